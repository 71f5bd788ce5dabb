#!/usr/bin/env python3
"""End to end for `kmr query` (issue 8): two independent kmrd instances with
different attestation keys over the same artifacts, each with one kmr-worker
whose engine is stood in by fake_rebuild.py. Instance B's engine answers
"different" for one artifact. Then the real `kmr query` binary must: pass with
--threshold 2 for an artifact both attest PASSED; fail (exit 1) for the
artifact B attests FAILED; fail when B's pinned key is an unrelated key; pass
with --threshold 1 and only A.

(e2e_test.py runs its whole test at import time, so the few helpers are copied.)
"""
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", os.getcwd()), "kmr")
KMRD = os.path.join(RUNFILES, "server/kmrd")
WORKER = os.path.join(RUNFILES, "server/kmr-worker")
KMR = os.path.join(RUNFILES, "rebuilder/cli/kmr")
FAKE = os.path.join(RUNFILES, "tests/e2e/fake_rebuild.py")
TMP = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
ADMIN = "e2e-query-admin-token-0123456789"

failures = []
children = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def cleanup():
    for p in children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def jget(base, path):
    try:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None


# ---------------------------------------------------------------- artifacts
repo_dir = os.path.join(TMP, "repo")
os.makedirs(repo_dir, exist_ok=True)
index = {"artifacts": []}
hashes = {}
for variant in ("good", "bad"):
    fn = "linux-6.8-%s.pkg" % variant
    data = os.urandom(2048) + fn.encode()
    open(os.path.join(repo_dir, fn), "wb").write(data)
    h = hashlib.sha256(data).hexdigest()
    hashes[variant] = h
    index["artifacts"].append({"set": "arch/" + variant, "name": "linux", "version": "6.8-" + variant,
                               "arch": "x86_64", "url": fn, "sha256": h, "size": len(data)})
json.dump(index, open(os.path.join(repo_dir, "index.json"), "w"))
GOOD, BAD = hashes["good"], hashes["bad"]
PASS = {"files": "identical", "module_root": "match"}
FAIL = {"files": "different", "module_root": "mismatch", "differing": ["lib/modules/x/kmr_seed.ko"]}
EXPECT = {"A": {GOOD: PASS, BAD: PASS}, "B": {GOOD: PASS, BAD: FAIL}}


def start_instance(name):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    wkey = os.path.join(d, "worker.pem")
    wpub = subprocess.run([WORKER, "--gen-key", wkey], check=True, capture_output=True, text=True).stdout.strip()
    expect_file = os.path.join(d, "expect.json")
    json.dump(EXPECT[name], open(expect_file, "w"))
    config = {
        "state_dir": os.path.join(d, "state"),
        "admin_token": ADMIN,
        "log": {"format": "json", "level": "info"},
        "http": {"listen": "127.0.0.1:%d" % port},
        "queue": {"lease_seconds": 10, "heartbeat_seconds": 1, "retry_backoff_seconds": 1,
                  "max_build_attempts": 1, "max_repro_attempts": 1},
        "sync_interval_seconds": 2,
        "repositories": [{"name": "arch-q", "distro": "arch", "url": "file://%s/index.json" % repo_dir,
                          "format": "kmr-import", "packages": ["linux"]}],
        "workers": [{"name": "w" + name, "public_key": wpub}],
    }
    cfg = os.path.join(d, "kmrd.json")
    json.dump(config, open(cfg, "w"))
    log = open(os.path.join(d, "log.txt"), "ab")
    p = subprocess.Popen([KMRD, "--config", cfg, "--web", os.path.join(d, "noweb")], stdout=log, stderr=log,
                         start_new_session=True)
    children.append(p)
    deadline = time.time() + 60  # a deadline, not a poll count: the suite runs beside kernel builds
    while True:
        try:
            if jget(base, "/healthz")[0] == 200:
                break
        except Exception:
            pass
        if time.time() > deadline:
            raise SystemExit("kmrd %s did not come up" % name)
        time.sleep(0.05)
    env = dict(os.environ, FAKE_EXPECT=expect_file, FAKE_SLEEP="0")
    server_key = os.path.join(d, "state", "keys", "attestation.pem.pub")
    w = subprocess.Popen([WORKER, "--server", base, "--server-key", server_key, "--key", wkey, "--name", "w" + name,
                          "--work-dir",
                          os.path.join(d, "work"), "--idle-seconds", "0.3",
                          "--rebuild-command", sys.executable + " " + FAKE],
                         env=env, stdout=log, stderr=log, start_new_session=True)
    children.append(w)
    return base, os.path.join(d, "state")


def pubkey_pem(state, name):
    """Public key PEM of the instance's attestation key (derived with openssl from STATE/keys/attestation.pem)."""
    out = os.path.join(TMP, name + "-attest.pub.pem")
    subprocess.run(["openssl", "pkey", "-in", os.path.join(state, "keys/attestation.pem"), "-pubout", "-out", out],
                   check=True)
    return out


def kmr_query(*args):
    r = subprocess.run([KMR, "query", "--cache-dir", os.path.join(TMP, "cache"), "--timeout", "10", "--json"]
                       + list(args), capture_output=True, text=True, timeout=60)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    summary = {k: j.get(k) for k in ("verified", "independent_passes", "threshold")} if j else r.stdout[:300]
    if j:
        summary["rebuilders"] = [{"keyids": b.get("keyids"), "reason": b.get("reason"),
                                  "status": [a.get("status") for a in b.get("attestations", [])]}
                                 for b in j.get("rebuilders", [])]
    print("  kmr query %s -> exit %d %s %s" % (" ".join(args[-3:]), r.returncode, json.dumps(summary),
                                              r.stderr.strip()[:300]), flush=True)
    return r.returncode, j, r.stdout + r.stderr


try:
    URL_A, STATE_A = start_instance("A")
    URL_B, STATE_B = start_instance("B")

    deadline = time.time() + 120
    pending = {(u, h) for u in (URL_A, URL_B) for h in (GOOD, BAD)}
    while pending and time.time() < deadline:
        for u, h in list(pending):
            st, a = jget(u, "/api/v1/artifacts/sha256/" + h)
            if st == 200 and a and a.get("attestations"):
                pending.discard((u, h))
        time.sleep(0.2)
    check(not pending, "both kmrd instances stored attestations for both artifacts (missing: %s)" % sorted(pending))

    KEY_A, KEY_B = pubkey_pem(STATE_A, "A"), pubkey_pem(STATE_B, "B")
    check(open(KEY_A).read() != open(KEY_B).read(), "the two instances have different attestation keys")
    st, keys = jget(URL_A, "/api/v1/keys")
    check(st == 200 and "".join(open(KEY_A).read().split()) in "".join(json.dumps(keys).replace("\\n", "").split()),
          "GET /api/v1/keys serves A's public key")
    OTHER_PRIV = os.path.join(TMP, "other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", OTHER_PRIV], check=True)
    OTHER = os.path.join(TMP, "other.pub.pem")
    subprocess.run(["openssl", "pkey", "-in", OTHER_PRIV, "-pubout", "-out", OTHER], check=True)

    both = ["--rebuilder", URL_A, "--key", KEY_A, "--rebuilder", URL_B, "--key", KEY_B]
    rc, j, out = kmr_query(*both, "--threshold", "2", "sha256:" + GOOD)
    check(rc == 0 and j is not None and j.get("verified") is True and j.get("independent_passes") == 2,
          "(1) both attest PASSED, threshold 2 -> exit 0, verified by 2 independent rebuilders")
    rc_text = subprocess.run([KMR, "query", "--cache-dir", os.path.join(TMP, "cache"), *both, "--threshold", "2",
                              "sha256:" + GOOD], capture_output=True, text=True, timeout=60)
    check(rc_text.returncode == 0 and ("\nVERIFIED: sha256:" + GOOD) in "\n" + rc_text.stdout,
          "(1) text output ends with: " + rc_text.stdout.strip().splitlines()[-1][:200])

    rc, j, out = kmr_query(*both, "--threshold", "2", "sha256:" + BAD)
    statuses = [[a.get("status") for a in b.get("attestations", [])] for b in (j or {}).get("rebuilders", [])]
    check(rc == 1 and j is not None and j.get("verified") is False and j.get("independent_passes") == 1
          and statuses == [["passed"], ["failed"]],
          "(2) B attests FAILED, threshold 2 -> exit 1, not verified, B's attestation reported failed")

    wrong = ["--rebuilder", URL_A, "--key", KEY_A, "--rebuilder", URL_B, "--key", OTHER]
    rc, j, out = kmr_query(*wrong, "--threshold", "2", "sha256:" + GOOD)
    reason_b = ((j or {}).get("rebuilders") or [{}, {}])[-1].get("reason") or ""
    check(rc == 1 and j is not None and j.get("verified") is False and j.get("independent_passes") == 1
          and "not signed by the pinned key" in reason_b,
          "(3) B's key replaced by an unrelated key, threshold 2 -> exit 1, names the pinned key")

    rc, j, out = kmr_query("--rebuilder", URL_A, "--key", KEY_A, "--threshold", "1", "sha256:" + GOOD)
    check(rc == 0 and j is not None and j.get("verified") is True and len(j.get("rebuilders", [])) == 1,
          "(4) only A, threshold 1 -> exit 0")
finally:
    cleanup()

if failures:
    print("%d failure(s)" % len(failures))
    sys.exit(1)
print("all checks passed")
