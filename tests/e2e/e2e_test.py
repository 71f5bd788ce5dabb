#!/usr/bin/env python3
"""End to end: a real kmrd and kmr-worker processes on loopback.

Synthetic repositories for four distros (kmr-import index documents) with
known verdicts; the engine is stood in by fake_rebuild.py (see there). Checks:
bad HTTP (oversized headers/bodies, slowloris, invalid JSON, unknown fields,
invalid hex, path traversal) -> JSON 4xx and the server keeps serving; worker
auth faults (unsigned, forged, replayed, stale, report for a job not held) ->
4xx and nothing written; kill -9 of a worker mid-job -> the job is leased again
and finishes once; kill -9 of kmrd mid-run -> restart resumes, no verdict lost
or duplicated; every artifact reaches its expected verdict and queries by hash
return it; SIGTERM shuts down cleanly.
"""
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", os.getcwd()), "kmr")
KMRD = os.path.join(RUNFILES, "server/kmrd")
WORKER = os.path.join(RUNFILES, "server/kmr-worker")
FAKE = os.path.join(RUNFILES, "tests/e2e/fake_rebuild.py")
TMP = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
ADMIN = "e2e-admin-token-0123456789"

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


# Every wait below is bounded by a deadline, not a count of polls: the suite runs
# beside kernel builds that hold both cores, and a poll loop sized for an idle
# machine ends before a loaded one gets there.
SLOW = 60


def wait_until(pred, seconds=SLOW, step=0.1):
    deadline = time.time() + seconds
    while True:
        try:
            if pred():
                return True
        except Exception:
            pass
        if time.time() >= deadline:
            return False
        time.sleep(step)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


PORT = free_port()
BASE = "http://127.0.0.1:%d" % PORT


def http(method, path, body=None, headers=None, timeout=10):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def jget(path, headers=None):
    st, body, _ = http("GET", path, headers=headers)
    return st, json.loads(body) if body else None


def raw(data, read_timeout=10):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=read_timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
    except socket.timeout:
        pass
    s.close()
    status = int(out.split(b" ")[1]) if out.startswith(b"HTTP/1.1") else 0
    body = out.partition(b"\r\n\r\n")[2]
    return status, body


def error_code(body):
    try:
        return json.loads(body)["error"]["code"]
    except Exception:
        return None


# ---------------------------------------------------------------- repositories
VARIANTS = {
    "pristine": {"files": "identical", "module_root": "match"},
    "seed": {"files": "different", "module_root": "mismatch", "differing": ["lib/modules/x/kmr_seed.ko"]},
    "signed": {"files": "identical-modulo-signatures", "module_root": "absent"},
    "broken": {"status": "build-failed", "files": "build-failed", "module_root": None},
    # The engine claims identical but reports rebuilt hashes that differ: kmrd stores "different".
    "liar": {"files": "identical", "module_root": "match", "lie": True, "stored_files": "different"},
}
DISTROS = {"arch": ["linux", "linux-headers"], "nixos": ["linux"], "suse": ["kernel-default"], "proxmox": ["proxmox-kernel-6.8"]}
repo_dir = os.path.join(TMP, "repos")
os.makedirs(repo_dir, exist_ok=True)
expect = {}      # sha256 -> verdict (for the fake engine)
artifacts = []   # (sha256, distro, name, variant, set)
for distro, names in DISTROS.items():
    index = {"artifacts": []}
    for variant in VARIANTS:
        set_key = "%s/%s" % (distro, variant)
        for name in names:
            fn = "%s-%s-6.8-%s.pkg" % (distro, name, variant)
            data = os.urandom(2048) + fn.encode()
            open(os.path.join(repo_dir, fn), "wb").write(data)
            h = hashlib.sha256(data).hexdigest()
            expect[h] = VARIANTS[variant]
            artifacts.append((h, distro, name, variant, set_key))
            index["artifacts"].append({"set": set_key, "name": name, "version": "6.8-" + variant, "arch": "x86_64",
                                       "url": fn, "sha256": h, "size": len(data)})
    if distro == "arch":  # filtered out by the package patterns
        index["artifacts"].append({"set": "arch/firefox", "name": "firefox", "version": "1", "arch": "x86_64",
                                   "url": "firefox.pkg", "sha256": "ee" * 32})
    json.dump(index, open(os.path.join(repo_dir, "index-%s.json" % distro), "w"))
expect_file = os.path.join(TMP, "expect.json")
json.dump(expect, open(expect_file, "w"))
SETS = sorted({a[4] for a in artifacts})

keys = {}
for w in ("w1", "w2", "w3"):
    k = os.path.join(TMP, w + ".pem")
    out = subprocess.run([WORKER, "--gen-key", k], check=True, capture_output=True, text=True).stdout.strip()
    keys[w] = (k, out)

config = {
    "state_dir": os.path.join(TMP, "state"),
    "admin_token": ADMIN,
    "log": {"format": "json", "level": "info"},
    "http": {"listen": "127.0.0.1:%d" % PORT, "read_timeout_ms": 1500, "write_timeout_ms": 1500,
             "idle_timeout_ms": 3000, "max_json_body": 65536, "max_report_body": 1 << 20, "shutdown_grace_ms": 3000,
             "max_connections": 24, "max_inflight_body_bytes": 1 << 20},
    "queue": {"lease_seconds": 4, "heartbeat_seconds": 1, "retry_backoff_seconds": 1, "max_build_attempts": 1,
              "max_repro_attempts": 1},
    "sync_interval_seconds": 2,
    "max_clock_skew_seconds": 60,
    "repositories": [{"name": d + "-e2e", "distro": d, "url": "file://%s/index-%s.json" % (repo_dir, d),
                      "format": "kmr-import", "packages": ["linux", "linux-*", "kernel-*", "proxmox-kernel-*"]}
                     for d in DISTROS],
    "workers": [{"name": w, "public_key": keys[w][1]} for w in keys],
}
cfg_file = os.path.join(TMP, "kmrd.json")
json.dump(config, open(cfg_file, "w"))

check(subprocess.run([KMRD, "--config", cfg_file, "--check-config"], capture_output=True).returncode == 0, "--check-config accepts the config")
bad_cfg = os.path.join(TMP, "bad.json")
json.dump({"http": {"listen": "127.0.0.1:1", "bogus": 1}}, open(bad_cfg, "w"))
r = subprocess.run([KMRD, "--config", bad_cfg, "--check-config"], capture_output=True, text=True)
check(r.returncode == 2 and "unknown key \"bogus\"" in r.stderr, "--check-config rejects unknown keys: " + r.stderr.strip())

kmrd_log = open(os.path.join(TMP, "kmrd.log"), "ab")
children = []


def _cleanup():
    for p in children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL) if getattr(p, "_own_group", False) else p.kill()
            except OSError:
                pass


import atexit
atexit.register(_cleanup)


def start_kmrd():
    p = subprocess.Popen([KMRD, "--config", cfg_file, "--web", os.path.join(TMP, "noweb")], stdout=kmrd_log,
                         stderr=kmrd_log)
    children.append(p)
    if wait_until(lambda: jget("/healthz")[0] == 200, step=0.05):
        return p
    raise SystemExit("kmrd did not come up")


kmrd = start_kmrd()
SERVER_KEY = os.path.join(config["state_dir"], "keys", "attestation.pem.pub")  # kmrd's key, pinned by workers
wait_until(lambda: jget("/api/v1/queue")[1]["queued"] == len(SETS))
st, q = jget("/api/v1/queue")
check(q["queued"] == len(SETS), "sync enqueued one job per artifact set (%d)" % q["queued"])
st, page = jget("/api/v1/artifacts?name=firefox")
check(page["items"] == [], "package patterns filter the index")

# ---------------------------------------------------------------- bad HTTP
st, body = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
check(st == 431 and error_code(body) == "header_too_large", "oversized headers -> 431 JSON (%s)" % st)
st, body = raw(b"POST /api/v1/admin/requeue HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"{" * 1000)
check(st == 413 and error_code(body) == "body_too_large", "oversized body -> 413 JSON (%s)" % st)
st, body = raw(b"POST /api/v1/admin/requeue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Authorization: Bearer " + ADMIN.encode() + b"\r\n\r\n" +
               b"11170\r\n" + b"x" * 70000 + b"\r\n0\r\n\r\n")
check(st == 413, "oversized chunked body -> 413 (%s)" % st)
# Slowloris: one header byte every 200 ms; the read timeout (1.5 s) closes it.
s = socket.create_connection(("127.0.0.1", PORT))
t0 = time.time()
closed = False
try:
    s.sendall(b"GET / HTTP/1.1\r\n")
    for _ in range(60):
        s.sendall(b"X")
        time.sleep(0.2)
except (BrokenPipeError, ConnectionResetError):
    closed = True
s.settimeout(2)
try:
    closed = closed or s.recv(100) == b""
except (ConnectionResetError, socket.timeout):
    closed = True
s.close()
check(closed and time.time() - t0 < 6, "slowloris connection closed after %.1fs" % (time.time() - t0))
auth = {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"}
st, body, _ = http("POST", "/api/v1/admin/requeue", "{", auth)
check(st == 400 and error_code(body) == "invalid_json", "invalid JSON -> 400 invalid_json")
st, body, _ = http("POST", "/api/v1/admin/requeue", '{"bogus":1}', auth)
check(st == 400 and error_code(body) == "unknown_field", "unknown field -> 400 unknown_field")
st, body, _ = http("POST", "/api/v1/admin/requeue", '{"failed":true}', {"Authorization": "Bearer wrong"})
check(st == 401 and error_code(body) == "unauthorized", "admin without the token -> 401")
st, body, _ = http("GET", "/api/v1/artifacts/sha256/xyz")
check(st == 400 and error_code(body) == "invalid_hex", "invalid hex -> 400 invalid_hex")
st, body, _ = http("GET", "/api/v1/artifacts/sha256/" + "0" * 64)
check(st == 404 and error_code(body) == "not_found", "unknown hash -> 404 not_found")
for target in (b"/ui/../../etc/passwd", b"/%2e%2e/%2e%2e/etc/passwd", b"/ui/..%2f..%2fetc/passwd", b"//etc/passwd"):
    st, body = raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(st == 400 and error_code(body) == "bad_path", "path traversal %s -> 400 bad_path" % target.decode())
st, body = raw(b"GARBAGE\r\n\r\n")
check(st == 400, "malformed request line -> 400 (%s)" % st)
st, _ = jget("/healthz")
check(st == 200, "server keeps serving after bad requests")
st, body, hdrs = http("GET", "/api/v1/stats")
check(hdrs.get("Content-Security-Policy") == "default-src 'self'" and hdrs.get("X-Content-Type-Options") == "nosniff",
      "CSP and nosniff headers")

# Worker headers are checked before the body is read: an unknown key gets its 401 at once,
# though the announced body never arrives (the connection would otherwise wait for it).
head = ("POST /api/v1/worker/jobs/1/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 500000\r\nX-Kmr-Key: %s\r\nX-Kmr-Origin: %s\r\nX-Kmr-Timestamp: %d\r\n"
        "X-Kmr-Nonce: %s\r\nX-Kmr-Signature: %s\r\n\r\n" % ("ab" * 32, BASE, int(time.time()), "cd" * 16, "ef" * 64))
# The body never arrives, so a 401 naming the key (not a read timeout) can only
# come from the headers; the time bound is loose for a loaded machine.
t0 = time.time()
st, body = raw(head.encode(), read_timeout=10)
check(st == 401 and error_code(body) == "unknown_worker" and time.time() - t0 < 5.0,
      "unknown worker key refused from the headers, before the body (%s in %.2fs)" % (st, time.time() - t0))
# Connection cap (24 in this config): one more connection gets 503 busy, and the server recovers.
held = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(24)]
time.sleep(0.3)
st, body = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", read_timeout=3)
check(st == 503 and error_code(body) == "busy", "connection over max_connections -> 503 busy (%s)" % st)
for c in held:
    c.close()
time.sleep(0.3)
st, _ = jget("/healthz")
check(st == 200, "serving again once connections end")


# ---------------------------------------------------------------- worker auth faults
def signed(worker, method, path, body, ts=None, nonce=None, sign_with=None):
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or os.urandom(16).hex()
    msg = "kmr-worker-request-v2\n%s\n%s\n%s\n%s\n%d\n%s" % (BASE, method, path, hashlib.sha256(body.encode()).hexdigest(),
                                                           ts, nonce)
    mf = os.path.join(TMP, "msg")
    open(mf, "w").write(msg)
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", keys[sign_with or worker][0], "-rawin", "-in", mf],
                         check=True, capture_output=True).stdout.hex()
    return {"X-Kmr-Key": keys[worker][1], "X-Kmr-Origin": BASE, "X-Kmr-Timestamp": str(ts), "X-Kmr-Nonce": nonce,
            "X-Kmr-Signature": sig, "Content-Type": "application/json"}


def blob_count():
    n = 0
    for _, _, files in os.walk(os.path.join(config["state_dir"], "blobs")):
        n += len(files)
    return n


st, body, _ = http("POST", "/api/v1/worker/claim", "{}")
check(st == 401 and error_code(body) == "unsigned", "unsigned worker request -> 401")
st, body, _ = http("POST", "/api/v1/worker/claim", "{}", signed("w1", "POST", "/api/v1/worker/claim", "{}", sign_with="w2"))
check(st == 401 and error_code(body) == "bad_signature", "forged signature -> 401")
st, body, _ = http("POST", "/api/v1/worker/claim", "{}", signed("w1", "POST", "/api/v1/worker/claim", "{}", ts=int(time.time()) - 3600))
check(st == 401 and error_code(body) == "stale_timestamp", "stale timestamp -> 401")
hb = '{"lease":"nope"}'
h = signed("w1", "POST", "/api/v1/worker/jobs/999999/heartbeat", hb)
st1, b1, _ = http("POST", "/api/v1/worker/jobs/999999/heartbeat", hb, h)
st2, b2, _ = http("POST", "/api/v1/worker/jobs/999999/heartbeat", hb, h)
check(st1 == 409 and st2 == 401 and error_code(b2) == "replayed", "replayed request -> 401 replayed (%s, %s)" % (st1, st2))
st, body, _ = http("POST", "/api/v1/worker/claim", "{}", signed("w1", "POST", "/api/v1/worker/claim", "{}"))
job = json.loads(body)["job"]
check(st == 200 and job is not None, "signed claim leases a job")
before = blob_count()
rep = json.dumps({"lease": job["lease"], "status": "verified", "files": "identical", "module_root": "match", "log": "forged log"})
path = "/api/v1/worker/jobs/%d/report" % job["id"]
st, body, _ = http("POST", path, rep, signed("w2", "POST", path, rep))
check(st == 409 and error_code(body) == "lease_not_held", "report for a job not held -> 409")
sha0 = job["artifacts"][0]["sha256"]
st, a = jget("/api/v1/artifacts/sha256/" + sha0)
check(a["verdicts"] is None and a["history"] == [] and blob_count() == before, "nothing written for the refused report")
# w1 never reports this job: its lease expires and the job is leased again later.

# In-flight body budget (1 MiB here): a second announced 800 kB body while the first is pending -> 503.
def pending_report(length):
    h = signed("w1", "POST", "/api/v1/worker/jobs/1/report", "x")
    c = socket.create_connection(("127.0.0.1", PORT), timeout=15)
    c.sendall(("POST /api/v1/worker/jobs/1/report HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (
        length, "".join("%s: %s\r\n" % kv for kv in h.items()))).encode())
    return c


first = pending_report(800000)
time.sleep(0.3)
second = pending_report(800000)
try:
    reply = second.recv(4096)
except socket.timeout:
    reply = b""
check(reply.startswith(b"HTTP/1.1 503") and b'"busy"' in reply,
      "request bodies over max_inflight_body_bytes -> 503 busy (%s)" % reply[:12])
first.close()
second.close()


def third_waits():
    # Held within the 1.5 s read timeout: the server took the header and waits
    # for the body. An answer (503 busy) means the closes are not yet seen.
    third = pending_report(800000)
    third.settimeout(0.5)
    try:
        third.recv(4096)
        return False
    except socket.timeout:
        return True
    finally:
        third.close()


check(wait_until(third_waits, seconds=30, step=0.3), "the budget is released when a request ends")

# ---------------------------------------------------------------- kill -9 a worker mid-job
worker_log = open(os.path.join(TMP, "workers.log"), "ab")


def start_worker(name, sleep):
    env = dict(os.environ, FAKE_EXPECT=expect_file, FAKE_SLEEP=str(sleep))
    p = subprocess.Popen([WORKER, "--server", BASE, "--server-key", SERVER_KEY, "--key", keys[name][0], "--name", name,
                          "--work-dir",
                          os.path.join(TMP, "work-" + name), "--idle-seconds", "0.3",
                          "--rebuild-command", sys.executable + " " + FAKE],
                         env=env, stdout=worker_log, stderr=worker_log, start_new_session=True)
    p._own_group = True
    children.append(p)
    return p


w1 = start_worker("w1", 60)
killed_job = None


def w1_running():
    global killed_job
    q = jget("/api/v1/queue")[1]
    running = [i for i in q["items"] if i["state"] == "running" and i["worker"] == "w1" and i["id"] != job["id"]]
    killed_job = running[0] if running else None
    return killed_job is not None


wait_until(w1_running)
check(killed_job is not None, "worker w1 leased a job")
os.killpg(w1.pid, signal.SIGKILL)
w1.wait()
w2 = start_worker("w2", 0.3)
w3 = start_worker("w3", 0.3)

# ---------------------------------------------------------------- kill -9 kmrd mid-run
done = 0


def verdicts_done():
    global done
    done = sum(d["total"] - d["pending"] for d in jget("/api/v1/stats")[1]["distros"])
    return done >= 4


wait_until(verdicts_done, step=0.05)
check(done >= 4 and done < len(artifacts), "kmrd killed mid-run (%d of %d artifacts had verdicts)" % (done, len(artifacts)))
kmrd.send_signal(signal.SIGKILL)
kmrd.wait()
time.sleep(0.5)
kmrd = start_kmrd()

deadline = time.time() + 180
while time.time() < deadline:
    st, q = jget("/api/v1/queue")
    if q["queued"] == 0 and q["running"] == 0:
        break
    time.sleep(0.3)
check(q["queued"] == 0 and q["running"] == 0, "queue drained after restarts")

# ---------------------------------------------------------------- verdicts
all_ok = True
for h, distro, name, variant, set_key in artifacts:
    st, a = jget("/api/v1/artifacts/sha256/" + h)
    want = VARIANTS[variant]
    v = a["verdicts"] or {}
    good = (st == 200 and a["sha256"] == h and a["distro"] == distro and a["package"]["name"] == name
            and v.get("module_root") == want.get("module_root")
            and (v.get("files") == want.get("stored_files", want["files"]) if "status" not in want
                 else v.get("status") == want["status"])
            and len(a["history"]) == 1)
    if want.get("module_root"):
        good = good and len(a["attestations"]) == 1
    if not good:
        all_ok = False
        print("  mismatch:", h, distro, name, variant, json.dumps(a)[:400])
check(all_ok, "every artifact has its expected verdict, exactly one attempt, attestations for verdicts")
st, a = jget("/api/v1/artifacts/sha256/" + artifacts[0][0])
st, env_body, _ = http("GET", a["attestations"][0])
env = json.loads(env_body)
check(env["payloadType"] == "application/vnd.in-toto+json" and len(env["signatures"]) == 1, "attestation envelope served")
st, cp, _ = http("GET", "/api/v1/log/checkpoint")
check(st == 200 and b"\n" in cp, "log checkpoint served")

db = sqlite3.connect(os.path.join(config["state_dir"], "kmrd.sqlite"))
n_rebuilds = db.execute("SELECT COUNT(*) FROM rebuilds").fetchone()[0]
n_verdicts = db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
killed_hist = db.execute("SELECT w.name FROM rebuilds r JOIN workers w ON w.id = r.worker_id WHERE r.job_id = ?",
                         (killed_job["id"],)).fetchall() if killed_job else []
db.close()
check(n_rebuilds == len(SETS) and n_verdicts == len(artifacts),
      "no verdict lost or duplicated (%d rebuilds for %d sets, %d verdicts)" % (n_rebuilds, len(SETS), n_verdicts))
check(len(killed_hist) == 1 and killed_hist[0][0] != "w1", "job of the killed worker finished once, by another worker (%s)" % killed_hist)

seen, cursor, pages = [], None, 0
while True:
    st, page = jget("/api/v1/artifacts?limit=7" + ("&cursor=" + cursor if cursor else ""))
    seen += [i["sha256"] for i in page["items"]]
    pages += 1
    cursor = page["next"]
    if not cursor:
        break
check(sorted(seen) == sorted(a[0] for a in artifacts) and pages == (len(artifacts) + 6) // 7,
      "cursor pagination returns every artifact once")
liar = [a for a in artifacts if a[3] == "liar"]
st, a = jget("/api/v1/artifacts/sha256/" + liar[0][0])
check(a["verdicts"]["files"] == "different" and not a["verdicts"]["reproducible"]
      and "identical" in (a["verdicts"].get("downgraded") or ""),
      "a worker's 'identical' with differing hashes is stored as different, with the reason: %s" % a["verdicts"].get("downgraded"))
st, env_body, _ = http("GET", a["attestations"][0])
import base64
stmt = json.loads(base64.b64decode(json.loads(env_body)["payload"]))
check(stmt["predicate"]["verificationResult"] == "FAILED", "and its attestation says FAILED")
st, page = jget("/api/v1/artifacts?verdict=different&distro=arch")
check(len(page["items"]) == 4, "filter by verdict and distro (seed and liar sets)")

# ---------------------------------------------------------------- rebuilderd read API
RB_STATUS = {"pristine": "GOOD", "signed": "GOOD", "seed": "BAD", "liar": "BAD", "broken": "FAIL"}
st, binp = jget("/api/v1/packages/binary")
by_sha = {r["kmr_sha256"]: r for r in binp["records"]}
check(st == 200 and binp["total"] == len(artifacts) and len(by_sha) == len(artifacts)
      and all(by_sha[h]["status"] == RB_STATUS[variant] and by_sha[h]["distribution"] == distro
              for h, distro, name, variant, _ in artifacts),
      "rebuilderd v1 packages/binary: every artifact with its GOOD/BAD/FAIL status")
st, v0 = jget("/api/v0/pkgs/list?distro=arch")
check(st == 200 and len(v0) == 10 and sorted({p["status"] for p in v0}) == ["BAD", "GOOD"],
      "rebuilderd v0 pkgs/list: FAIL shown as BAD")
st, dash = jget("/api/v1/dashboard")
n = {k: sum(1 for a in artifacts if RB_STATUS[a[3]] == k) for k in ("GOOD", "BAD", "FAIL")}
check(dash["rebuilds"] == {"good": n["GOOD"], "bad": n["BAD"], "fail": n["FAIL"], "unknown": 0},
      "rebuilderd v1 dashboard counts: %s" % dash)
good = next(r for r in binp["records"] if r["status"] == "GOOD")
st, link_body, _ = http("GET", "/api/v0/builds/%d/attestation" % good["build_id"])
st2, keys_body, _ = http("GET", "/api/v1/meta/public-keys")
link_file, keys_file = os.path.join(TMP, "link.json"), os.path.join(TMP, "rbkeys.json")
open(link_file, "wb").write(link_body)
open(keys_file, "wb").write(keys_body)
# sha512 beside sha256 everywhere, and the shipped file's digests recomputed by the
# checker over the package bytes themselves.
good_fn = next("%s-%s-6.8-%s.pkg" % (d, n, v) for h, d, n, v, _ in artifacts if h == good["kmr_sha256"])
vr = subprocess.run([sys.executable, os.path.join(RUNFILES, "server/rebuilderd_link_verify.py"), link_file, keys_file,
                     "--require-sha512", "--file", "%s=%s" % (good_fn, os.path.join(repo_dir, good_fn))],
                    capture_output=True, text=True)
check(st == 200 and st2 == 200 and vr.returncode == 0, "rebuilderd in-toto link verifies: %s" % (vr.stdout + vr.stderr).strip())
bad = next(r for r in binp["records"] if r["status"] == "BAD")
st, _, _ = http("GET", "/api/v0/builds/%d/attestation" % bad["build_id"])
check(st == 404, "no rebuilderd link for a BAD build")
st, _, _ = http("POST", "/api/v1/packages/binary", b"{}")
check(st == 403, "rebuilderd v1 is read-only (403)")
st, w = jget("/api/v1/workers")
check(all("address" not in i for i in w["items"]), "worker addresses hidden without the admin token")
st, w = jget("/api/v1/workers", {"Authorization": "Bearer " + ADMIN})
check(any(i.get("address") == "127.0.0.1" for i in w["items"]), "worker addresses shown to admins")
st, metrics, _ = http("GET", "/metrics")
check(b"kmrd_http_requests_total{route=\"/api/v1/artifacts/sha256/{hex}\",status=\"200\"}" in metrics
      and b"kmrd_queue_depth" in metrics, "Prometheus metrics")

for w in (w2, w3):
    os.killpg(w.pid, signal.SIGTERM)
for w in (w2, w3):
    w.wait(timeout=10)
kmrd.send_signal(signal.SIGTERM)
try:
    rc = kmrd.wait(timeout=10)
except subprocess.TimeoutExpired:
    kmrd.kill()
    rc = -1
check(rc == 0, "SIGTERM: graceful shutdown, exit 0")

# ---------------------------------------------------------------- a log behind the database
# The database references attestations by log index: kmrd refuses to start on a log that lost them.
state = config["state_dir"]
os.rename(os.path.join(state, "log"), os.path.join(state, "log.real"))
os.makedirs(os.path.join(state, "log"))
r = subprocess.run([KMRD, "--config", cfg_file], capture_output=True, text=True, timeout=30)
check(r.returncode == 2 and "transparency log" in r.stdout + r.stderr,
      "kmrd refuses to start when the database references entries beyond the log (rc %d)" % r.returncode)
import shutil
shutil.rmtree(os.path.join(state, "log"))
os.rename(os.path.join(state, "log.real"), os.path.join(state, "log"))

# ---------------------------------------------------------------- worker key file mode
loose = os.path.join(TMP, "loose.pem")
shutil.copy(keys["w3"][0], loose)
os.chmod(loose, 0o644)
r = subprocess.run([WORKER, "--server", BASE, "--server-key", SERVER_KEY, "--key", loose, "--exit-when-idle"],
                   capture_output=True, text=True, timeout=30)
check(r.returncode == 2 and loose in r.stderr and "0644" in r.stderr,
      "worker refuses a group/world-readable key, naming path and mode: " + r.stderr.strip())


# ---------------------------------------------------------------- replies must be signed by kmrd
# A stand-in kmrd hands the worker a valid job (a real file with its sha256). Only a reply signed
# with kmrd's pinned key, bound to the request's nonce and origin, may make it run the engine.
import http.server
import threading

KMRD_PRIV = os.path.join(state, "keys", "attestation.pem")


def ed25519_sign(key_file, msg):
    mf = os.path.join(TMP, "reply-msg")
    open(mf, "wb").write(msg)
    return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key_file, "-rawin", "-in", mf],
                          check=True, capture_output=True).stdout.hex()


def fake_kmrd(mode):
    port = free_port()
    origin = "http://127.0.0.1:%d" % port
    art = os.path.join(TMP, "mitm-artifact.pkg")
    open(art, "wb").write(b"artifact bytes")
    job = {"id": 7, "lease": "l" * 32, "heartbeat_seconds": 60, "distro": "arch", "set": "s",
           "artifacts": [{"filename": "mitm-artifact.pkg", "url": "file://" + art,
                          "sha256": hashlib.sha256(b"artifact bytes").hexdigest()}]}
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.path)
            body = json.dumps({"job": job} if self.path.endswith("/claim") else {}).encode()
            nonce = self.headers.get("X-Kmr-Nonce", "")
            msg = ("kmr-server-reply-v1\n%s\n%s\n200\n%s" % (origin, nonce, hashlib.sha256(body).hexdigest())).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if mode == "signed":
                self.send_header("X-Kmr-Reply-Signature", ed25519_sign(KMRD_PRIV, msg))
            elif mode == "other-key":
                self.send_header("X-Kmr-Reply-Signature", ed25519_sign(keys["w2"][0], msg))
            elif mode == "other-nonce":
                self.send_header("X-Kmr-Reply-Signature", ed25519_sign(KMRD_PRIV, msg.replace(nonce.encode(), b"0" * 32)))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    marker = os.path.join(TMP, "engine-ran-" + mode)
    engine = os.path.join(TMP, "marker-engine.sh")
    open(engine, "w").write("#!/bin/sh\ntouch \"$MARKER\"\necho '{}'\n")
    os.chmod(engine, 0o755)
    log = open(os.path.join(TMP, "worker-" + mode + ".log"), "w+")
    w = subprocess.Popen([WORKER, "--server", origin, "--server-key", SERVER_KEY, "--key", keys["w3"][0],
                          "--work-dir", os.path.join(TMP, "work-" + mode), "--rebuild-command", engine],
                         env=dict(os.environ, MARKER=marker), stdout=log, stderr=log, start_new_session=True)
    # The control waits for the engine to run; a refused reply is done once the
    # worker has logged why it refused it.
    if mode == "signed":
        wait_until(lambda: os.path.exists(marker))
    else:
        wait_until(lambda: os.path.getsize(log.name) > 0 and seen and "claim failed" in open(log.name).read(), seconds=30)
    os.killpg(w.pid, signal.SIGKILL)
    w.wait()
    srv.shutdown()
    log.seek(0)
    return os.path.exists(marker), seen, log.read()


ran, seen, log = fake_kmrd("signed")
check(ran, "worker runs a job whose claim reply kmrd signed (control)")
for mode, why in (("unsigned", "not signed"), ("other-key", "does not verify"), ("other-nonce", "does not verify")):
    ran, seen, log = fake_kmrd(mode)
    check(not ran and seen and all(p.endswith("/claim") for p in seen) and why in log,
          "worker ignores a %s claim reply: no engine run, no report (%s)" % (mode, log.strip().splitlines()[-1:]))

# ---------------------------------------------------------------- TLS
import ssl
cert, key = os.path.join(TMP, "tls.crt"), os.path.join(TMP, "tls.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
tls_port = free_port()
tls_cfg = dict(config, state_dir=os.path.join(TMP, "tls-state"), repositories=[],
               http=dict(config["http"], listen="127.0.0.1:%d" % tls_port, tls_cert=cert, tls_key=key))
tls_file = os.path.join(TMP, "tls.json")
json.dump(tls_cfg, open(tls_file, "w"))
tls = subprocess.Popen([KMRD, "--config", tls_file], stdout=kmrd_log, stderr=kmrd_log)
children.append(tls)
ctx = ssl.create_default_context(cafile=cert)
ctx.check_hostname = False
body = None


def tls_healthz():
    global body
    with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % tls_port, context=ctx, timeout=5) as r:
        body = json.loads(r.read())
    return True


wait_until(tls_healthz)
check(body is not None and body["status"] == "ok", "TLS: HTTPS /healthz with the configured certificate")
tls.send_signal(signal.SIGTERM)
check(tls.wait(timeout=10) == 0, "TLS server shuts down cleanly")

# ---------------------------------------------------------------- out of descriptors: back off, do not spin
import resource


def cpu_seconds(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


fd_port = free_port()
fd_cfg = dict(config, state_dir=os.path.join(TMP, "fd-state"), repositories=[], workers=[],
              http=dict(config["http"], listen="127.0.0.1:%d" % fd_port, read_timeout_ms=20000, max_connections=1000))
fd_file = os.path.join(TMP, "fd.json")
json.dump(fd_cfg, open(fd_file, "w"))
fdk = subprocess.Popen([KMRD, "--config", fd_file], stdout=kmrd_log, stderr=kmrd_log,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
children.append(fdk)


def fd_healthz():
    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % fd_port, timeout=2) as resp:
        return resp.status == 200


wait_until(fd_healthz, step=0.05)
flood = []
for _ in range(120):
    try:
        flood.append(socket.create_connection(("127.0.0.1", fd_port), timeout=2))
    except OSError:
        break
time.sleep(0.5)
c0 = cpu_seconds(fdk.pid)
time.sleep(2)
burned = cpu_seconds(fdk.pid) - c0
check(burned < 0.5, "out of descriptors: accept backs off (%.2f s CPU in 2 s with %d connections held)" % (burned, len(flood)))
for c in flood:
    c.close()
ok_again = wait_until(fd_healthz)
check(ok_again, "serves again once descriptors are free")
fdk.send_signal(signal.SIGTERM)
fdk.wait(timeout=10)

# ---------------------------------------------------------------- kmrd's spawns inherit no descriptors
# kmrd --demo spawns kmr-worker: the child must not hold kmrd's listening socket or state files.
demo_state = os.path.join(TMP, "demo")
os.makedirs(os.path.join(demo_state, "fixtures"), exist_ok=True)
json.dump({"artifacts": []}, open(os.path.join(demo_state, "fixtures", "manifest.json"), "w"))
port_file = os.path.join(TMP, "demo.port")
demo = subprocess.Popen([KMRD, "--demo", "--state", demo_state, "--listen", "127.0.0.1:0", "--port-file", port_file,
                         "--web", os.path.join(TMP, "noweb")], stdout=kmrd_log, stderr=kmrd_log, start_new_session=True,
                        env=dict(os.environ, KMR_DEMO_REALKERNEL="0"))
demo._own_group = True
children.append(demo)
worker_pid = None
deadline = time.time() + SLOW
while time.time() < deadline:
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
                cmd = open("/proc/%s/cmdline" % d, "rb").read()
            except OSError:
                continue
            if int(stat[1]) == demo.pid and b"kmr-worker" in cmd and b"--server" in cmd:  # not --gen-key
                worker_pid = int(d)
    if worker_pid and os.path.exists(port_file):
        break
    time.sleep(0.05)
if worker_pid is None or not os.path.exists(port_file):
    check(False, "kmrd --demo spawned its worker and wrote its port within %d s" % SLOW)
    os.killpg(demo.pid, signal.SIGKILL)
    sys.exit(1)
demo_port = int(open(port_file).read())
listen_inodes = set()
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    if f[3] == "0A" and int(f[1].split(":")[1], 16) == demo_port:
        listen_inodes.add("socket:[%s]" % f[9])
kmrd_fds = {os.readlink("/proc/%d/fd/%s" % (demo.pid, fd)) for fd in os.listdir("/proc/%d/fd" % demo.pid)}
worker_fds = {}
for fd in os.listdir("/proc/%d/fd" % worker_pid):
    try:
        worker_fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (worker_pid, fd))
    except OSError:
        pass
leaked = {fd: t for fd, t in worker_fds.items() if fd > 2 and (t in listen_inodes or t.startswith(demo_state))}
check(worker_pid is not None and listen_inodes and listen_inodes <= kmrd_fds and not leaked,
      "spawned kmr-worker holds neither kmrd's listening socket nor its state files (fds %s)" % sorted(worker_fds.items()))
# ... and talks to kmrd: its signed claims are accepted and kmrd's signed replies verify (no "claim failed").


def demo_worker_online():
    with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/workers" % demo_port, timeout=2) as resp:
        return any(w.get("name") == "demo-worker" and w.get("online") for w in json.loads(resp.read())["items"])


online = wait_until(demo_worker_online)
kmrd_log.flush()
demo_log = open(os.path.join(TMP, "kmrd.log"), "rb").read().decode(errors="replace")
check(online and "kmr-worker[demo-worker] claim failed" not in demo_log,
      "the demo's worker pins kmrd's key and polls successfully")
os.killpg(demo.pid, signal.SIGTERM)
demo.wait(timeout=15)

if failures:
    print("\n%d failure(s); logs in %s" % (len(failures), TMP))
    for f in failures:
        print("  " + f)
    os.system("tail -50 %s/kmrd.log %s/workers.log" % (TMP, TMP))
    sys.exit(1)
print("all e2e checks passed")
