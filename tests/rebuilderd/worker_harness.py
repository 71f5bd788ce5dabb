#!/usr/bin/env python3
"""Runs a rebuilderd backend exactly as rebuilderd-worker (v0.27) does.

  worker_harness.py --backend PATH --input URL_OR_FILE [--artifact URL_OR_FILE ...]
                    [--timeout S] [--max-bytes N] [--json OUT]

- makes /tmp/rebuilderdXXXX/{inputs,out};
- "downloads" every artifact and the input into inputs/, each named after
  the last path segment of its URL (local paths are copied);
- runs the backend with exactly one argument, the input's local path, with
  the harness's environment plus REBUILDERD_OUTDIR, stdin /dev/null, in its
  own process group, stdout and stderr merged into one log capped at
  max_bytes;
- on timeout sends SIGTERM to the process group, then SIGKILL 10 s later;
- ignores the exit status; for each artifact expects out/<same name> and
  compares it byte for byte with the original: GOOD or BAD (missing = BAD);
  the job is GOOD only when every artifact is GOOD;
- prints a JSON summary (and writes it to --json).
Written from rebuilderd's documented behaviour; no rebuilderd code.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request


def fetch(src, dest_dir):
    name = urllib.parse.urlparse(src).path.rstrip("/").split("/")[-1] if "://" in src else os.path.basename(src)
    dest = os.path.join(dest_dir, name)
    if "://" in src:
        with urllib.request.urlopen(src, timeout=60) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)
    else:
        shutil.copyfile(src, dest)
    return dest


def run_backend(backend, arg, outdir, timeout, max_bytes):
    env = dict(os.environ, REBUILDERD_OUTDIR=outdir)
    p = subprocess.Popen([backend, arg], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    os.set_blocking(p.stdout.fileno(), False)
    log = bytearray()
    deadline = time.monotonic() + timeout
    killed_at = None
    timed_out = False
    while True:
        try:
            chunk = p.stdout.read(65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            if len(log) < max_bytes:
                log += chunk[: max_bytes - len(log)]
            continue
        if p.poll() is not None and not chunk:
            break
        now = time.monotonic()
        if now > deadline and not timed_out:
            timed_out = True
            os.killpg(p.pid, signal.SIGTERM)
            killed_at = now
        if killed_at is not None and now - killed_at > 10:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return p.returncode, bytes(log), timed_out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--artifact", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=86400)
    ap.add_argument("--max-bytes", type=int, default=20 << 20)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="rebuilderd", dir="/tmp")
    inputs, out = os.path.join(root, "inputs"), os.path.join(root, "out")
    os.mkdir(inputs)
    os.mkdir(out)
    try:
        arts = [fetch(x, inputs) for x in a.artifact]
        inp = fetch(a.input, inputs)
        rc, log, timed_out = run_backend(a.backend, inp, out, a.timeout, a.max_bytes)
        results = []
        for art in arts:
            name = os.path.basename(art)
            rebuilt = os.path.join(out, name)
            if not os.path.isfile(rebuilt):
                status = "BAD"
            else:
                with open(art, "rb") as f1, open(rebuilt, "rb") as f2:
                    status = "GOOD" if f1.read() == f2.read() else "BAD"
            results.append({"name": name, "status": status})
        job = "GOOD" if results and all(r["status"] == "GOOD" for r in results) else "BAD"
        summary = {"status": job, "artifacts": results, "backend_exit": rc, "timed_out": timed_out,
                   "log_bytes": len(log), "workdir": root}
        sys.stdout.write(log.decode("utf-8", "replace"))
        print("HARNESS " + json.dumps(summary))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(dict(summary, log=log.decode("utf-8", "replace")), f)
        return 0
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
