-- kmrd store, version 1. Applied once, inside a transaction, by the migration runner.
CREATE TABLE repositories (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  distro TEXT NOT NULL,
  url TEXT NOT NULL,
  last_sync_at INTEGER,
  last_sync_error TEXT
);

-- One (name, version, architecture) of a repository.
CREATE TABLE packages (
  id INTEGER PRIMARY KEY,
  repository_id INTEGER NOT NULL REFERENCES repositories(id),
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  arch TEXT NOT NULL,
  UNIQUE (repository_id, name, version, arch)
);
CREATE INDEX packages_name ON packages(name);

-- A build input: the set of artifacts one rebuild produces (e.g. Arch linux + linux-headers).
CREATE TABLE build_inputs (
  id INTEGER PRIMARY KEY,
  repository_id INTEGER NOT NULL REFERENCES repositories(id),
  set_key TEXT NOT NULL,
  distro TEXT NOT NULL,
  resource_class TEXT NOT NULL DEFAULT 'default',
  sources TEXT,                  -- where the worker finds sources (URL), if not the distro default
  created_at INTEGER NOT NULL,
  UNIQUE (repository_id, set_key)
);

CREATE TABLE artifacts (
  id INTEGER PRIMARY KEY,
  package_id INTEGER NOT NULL REFERENCES packages(id),
  build_input_id INTEGER NOT NULL REFERENCES build_inputs(id),
  filename TEXT NOT NULL,
  url TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER,
  created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX artifacts_sha256 ON artifacts(sha256);
CREATE INDEX artifacts_build_input ON artifacts(build_input_id);

-- One job per build input. state: queued | running | done.
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  build_input_id INTEGER NOT NULL UNIQUE REFERENCES build_inputs(id),
  state TEXT NOT NULL DEFAULT 'queued',
  priority INTEGER NOT NULL DEFAULT 1,
  resource_class TEXT NOT NULL DEFAULT 'default',
  lease_owner INTEGER REFERENCES workers(id),
  lease_token TEXT,
  lease_expiry INTEGER,
  build_attempts INTEGER NOT NULL DEFAULT 0,
  repro_attempts INTEGER NOT NULL DEFAULT 0,
  next_try INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_claim ON jobs(state, resource_class, priority, next_try);

CREATE TABLE workers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  public_key TEXT NOT NULL UNIQUE, -- hex of the raw 32-byte Ed25519 public key
  resource_classes TEXT NOT NULL DEFAULT '["default"]',
  address TEXT,
  last_seen INTEGER,
  created_at INTEGER NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0
);

-- Replay protection: a nonce is accepted once per worker inside the clock-skew window.
CREATE TABLE nonces (
  worker_id INTEGER NOT NULL,
  nonce TEXT NOT NULL,
  ts INTEGER NOT NULL,
  PRIMARY KEY (worker_id, nonce)
) WITHOUT ROWID;

-- Append-only: one row per finished attempt (accepted report).
CREATE TABLE rebuilds (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  build_input_id INTEGER NOT NULL REFERENCES build_inputs(id),
  worker_id INTEGER NOT NULL REFERENCES workers(id),
  lease_token TEXT NOT NULL UNIQUE,
  started_at INTEGER,
  finished_at INTEGER NOT NULL,
  status TEXT NOT NULL,          -- verified | build-failed | environment-unavailable | error
  module_root TEXT,
  files TEXT,
  reason TEXT,
  shipped_root TEXT,
  rebuilt_root TEXT,
  differing TEXT,                -- JSON array
  environment TEXT,              -- JSON object
  log_sha256 TEXT,               -- content-addressed blobs on disk
  diff_json_sha256 TEXT,
  diff_html_sha256 TEXT,
  duration_ms INTEGER,
  details TEXT                   -- the engine's JSON result (merkle levels, module counts, ...)
);
CREATE INDEX rebuilds_input ON rebuilds(build_input_id, id);

CREATE TABLE rebuild_artifacts (
  rebuild_id INTEGER NOT NULL REFERENCES rebuilds(id),
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  rebuilt_sha256 TEXT,
  PRIMARY KEY (rebuild_id, artifact_id)
);

-- Current verdict per artifact (the latest accepted rebuild).
CREATE TABLE verdicts (
  artifact_id INTEGER PRIMARY KEY REFERENCES artifacts(id),
  rebuild_id INTEGER NOT NULL REFERENCES rebuilds(id),
  status TEXT NOT NULL,
  module_root TEXT,
  files TEXT,
  updated_at INTEGER NOT NULL
);
CREATE INDEX verdicts_files ON verdicts(files);
CREATE INDEX verdicts_module_root ON verdicts(module_root);

CREATE TABLE attestations (
  sha256 TEXT PRIMARY KEY,       -- of the DSSE envelope bytes, stored on disk
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  rebuild_id INTEGER NOT NULL REFERENCES rebuilds(id),
  log_index INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX attestations_artifact ON attestations(artifact_id);

-- Snapshots for the overview chart: one row per distro per stats tick.
CREATE TABLE stats_history (
  ts INTEGER NOT NULL,
  distro TEXT NOT NULL,
  total INTEGER NOT NULL,
  reproducible INTEGER NOT NULL,
  not_reproducible INTEGER NOT NULL,
  failed INTEGER NOT NULL,
  PRIMARY KEY (ts, distro)
) WITHOUT ROWID;
