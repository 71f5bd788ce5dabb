#!/usr/bin/env python3
"""Stand-in for `kmr rebuild --json` in the server end-to-end test.

The e2e test exercises kmrd/kmr-worker (queue, leases, auth, crash recovery),
not the engine (the engine has its own tests against the fixture kernels). This
script answers like the engine: it hashes the package files it is given and
returns the verdict recorded for them in $FAKE_EXPECT (sha256 -> verdict),
after sleeping $FAKE_SLEEP seconds (so tests can kill processes mid-job).
"""
import hashlib
import json
import os
import sys
import time

args = sys.argv[1:]
files = []
i = 0
while i < len(args):
    a = args[i]
    if a in ("--backend", "--sources", "--timeout", "--work-dir"):
        i += 2
        continue
    if a.startswith("--"):
        i += 1
        continue
    files.append(a)
    i += 1

expect = json.load(open(os.environ["FAKE_EXPECT"]))
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
rebuilt = []
verdict = None
for f in files:
    h = hashlib.sha256(open(f, "rb").read()).hexdigest()
    verdict = verdict or expect[h]
    same = verdict["files"] == "identical" and not verdict.get("lie")
    rebuilt.append({"name": os.path.basename(f), "sha256": h if same else hashlib.sha256(h.encode()).hexdigest()})
log = os.path.join(os.environ.get("KMR_REBUILD_DIR", "/tmp"), "fake.log")
os.makedirs(os.path.dirname(log), exist_ok=True)
with open(log, "w") as fh:
    fh.write("fake rebuild of %s\n" % " ".join(os.path.basename(f) for f in files))
out = {"status": verdict.get("status", "verdict"), "files": verdict["files"], "module_root": verdict.get("module_root"),
       "differing": verdict.get("differing", []), "shipped_root": None if verdict.get("module_root") == "absent" else "ab" * 32, "rebuilt_root": "ab" * 32 if verdict.get("module_root") == "match" else "cd" * 32,
       "levels": 6, "environment": {"backend": "fake"}, "rebuilt": rebuilt, "log": log}
if out["status"] != "verdict":
    out["files"] = out["status"]
    out["reason"] = "fake build failure"
print(json.dumps(out))
sys.exit(0 if verdict["files"] == "identical" else 1)
