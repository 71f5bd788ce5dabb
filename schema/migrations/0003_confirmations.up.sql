-- kmrd store, version 3: independent confirmations before a reproducible verdict is accepted.

-- Rebuilds with id <= round_after no longer count as confirmations of the job's current
-- round (set by an admin requeue and by a result that is not reproducible).
ALTER TABLE jobs ADD COLUMN round_after INTEGER NOT NULL DEFAULT 0;
