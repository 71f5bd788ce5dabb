-- kmrd store, version 4: sha512 for rebuilderd's in-toto links, and the member index that
-- resolves what end users hold (a vmlinuz, a .ko, a NarHash, a store path) to its artifacts.

-- sha512 of the shipped file, as the worker that fetched it (and checked its sha256) reported it.
ALTER TABLE artifacts ADD COLUMN sha512 TEXT;
-- sha512 of the rebuilt file, as reported with its sha256.
ALTER TABLE rebuild_artifacts ADD COLUMN rebuilt_sha512 TEXT;

-- Member index state per artifact: NULL not indexed yet, else when; members_error says why
-- indexing failed (it is retried with the next verdict); members_truncated = 1 when the cap cut it.
ALTER TABLE artifacts ADD COLUMN members_indexed_at INTEGER;
ALTER TABLE artifacts ADD COLUMN members_error TEXT;
ALTER TABLE artifacts ADD COLUMN members_truncated INTEGER NOT NULL DEFAULT 0;

-- key: lowercase hex sha256 of a member as stored (kind "file"), decompressed ("decompressed"),
-- without its signature ("stripped"), a Nix output's NarHash ("nar"), or a Nix store path
-- ("store-path", key = the path itself).
CREATE TABLE member_hashes (
  key TEXT NOT NULL,
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  path TEXT NOT NULL,
  kind TEXT NOT NULL,
  PRIMARY KEY (key, artifact_id, path, kind)
) WITHOUT ROWID;
CREATE INDEX member_hashes_artifact ON member_hashes(artifact_id);
