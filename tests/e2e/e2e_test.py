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
             "idle_timeout_ms": 3000, "max_json_body": 65536, "max_report_body": 1 << 20, "shutdown_grace_ms": 3000},
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
    for _ in range(200):
        try:
            if jget("/healthz")[0] == 200:
                return p
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit("kmrd did not come up")


kmrd = start_kmrd()
for _ in range(100):
    st, q = jget("/api/v1/queue")
    if q and q["queued"] == len(SETS):
        break
    time.sleep(0.1)
check(q["queued"] == len(SETS), "sync enqueued one job per artifact set (%d)" % q["queued"])
st, page = jget("/api/v1/artifacts?name=firefox")
check(page["items"] == [], "package patterns filter the index")

# ---------------------------------------------------------------- bad HTTP
st, body = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
check(st == 431 and error_code(body) == "header_too_large", "oversized headers -> 431 JSON (%s)" % st)
st, body = raw(b"POST /api/v1/admin/requeue HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"{" * 1000)
check(st == 413 and error_code(body) == "body_too_large", "oversized body -> 413 JSON (%s)" % st)
st, body = raw(b"POST /api/v1/admin/requeue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
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


# ---------------------------------------------------------------- worker auth faults
def signed(worker, method, path, body, ts=None, nonce=None, sign_with=None):
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or os.urandom(16).hex()
    msg = "kmr-worker-request-v1\n%s\n%s\n%s\n%d\n%s" % (method, path, hashlib.sha256(body.encode()).hexdigest(), ts, nonce)
    mf = os.path.join(TMP, "msg")
    open(mf, "w").write(msg)
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", keys[sign_with or worker][0], "-rawin", "-in", mf],
                         check=True, capture_output=True).stdout.hex()
    return {"X-Kmr-Key": keys[worker][1], "X-Kmr-Timestamp": str(ts), "X-Kmr-Nonce": nonce, "X-Kmr-Signature": sig,
            "Content-Type": "application/json"}


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

# ---------------------------------------------------------------- kill -9 a worker mid-job
worker_log = open(os.path.join(TMP, "workers.log"), "ab")


def start_worker(name, sleep):
    env = dict(os.environ, FAKE_EXPECT=expect_file, FAKE_SLEEP=str(sleep))
    p = subprocess.Popen([WORKER, "--server", BASE, "--key", keys[name][0], "--name", name, "--work-dir",
                          os.path.join(TMP, "work-" + name), "--idle-seconds", "0.3",
                          "--rebuild-command", sys.executable + " " + FAKE],
                         env=env, stdout=worker_log, stderr=worker_log, start_new_session=True)
    p._own_group = True
    children.append(p)
    return p


w1 = start_worker("w1", 60)
killed_job = None
for _ in range(100):
    st, q = jget("/api/v1/queue")
    running = [i for i in q["items"] if i["state"] == "running" and i["worker"] == "w1" and i["id"] != job["id"]]
    if running:
        killed_job = running[0]
        break
    time.sleep(0.1)
check(killed_job is not None, "worker w1 leased a job")
os.killpg(w1.pid, signal.SIGKILL)
w1.wait()
w2 = start_worker("w2", 0.3)
w3 = start_worker("w3", 0.3)

# ---------------------------------------------------------------- kill -9 kmrd mid-run
for _ in range(200):
    st, s = jget("/api/v1/stats")
    done = sum(d["total"] - d["pending"] for d in s["distros"])
    if done >= 4:
        break
    time.sleep(0.05)
check(done >= 4 and done < len(artifacts), "kmrd killed mid-run (%d of %d artifacts had verdicts)" % (done, len(artifacts)))
kmrd.send_signal(signal.SIGKILL)
kmrd.wait()
time.sleep(0.5)
kmrd = start_kmrd()

deadline = time.time() + 90
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
            and (v.get("files") == want["files"] if "status" not in want else v.get("status") == want["status"])
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
check(sorted(seen) == sorted(a[0] for a in artifacts) and pages == 3, "cursor pagination returns every artifact once")
st, page = jget("/api/v1/artifacts?verdict=different&distro=arch")
check(len(page["items"]) == 2, "filter by verdict and distro")
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
for _ in range(100):
    try:
        with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % tls_port, context=ctx, timeout=5) as r:
            body = json.loads(r.read())
            break
    except Exception:
        time.sleep(0.1)
check(body is not None and body["status"] == "ok", "TLS: HTTPS /healthz with the configured certificate")
tls.send_signal(signal.SIGTERM)
check(tls.wait(timeout=10) == 0, "TLS server shuts down cleanly")

if failures:
    print("\n%d failure(s); logs in %s" % (len(failures), TMP))
    for f in failures:
        print("  " + f)
    os.system("tail -50 %s/kmrd.log %s/workers.log" % (TMP, TMP))
    sys.exit(1)
print("all e2e checks passed")
