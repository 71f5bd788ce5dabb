-- kmrd store, version 2: what kmrd checks itself instead of trusting a worker or a mirror.

-- The hash the engine reports for a rebuilt artifact when it is not the file's sha256
-- (Nix: the narinfo's NarHash, hex). NULL: the artifact's sha256.
ALTER TABLE artifacts ADD COLUMN content_sha256 TEXT;

-- Why kmrd changed a worker's reported verdict (e.g. "identical" with a differing hash), NULL if not.
ALTER TABLE rebuilds ADD COLUMN downgraded TEXT;

-- 1 when the last sync read the repository's index without a verified signature
-- (insecure_unsigned in the config, or a local file:// repository without trusted_keys).
ALTER TABLE repositories ADD COLUMN insecure_unsigned INTEGER NOT NULL DEFAULT 0;
