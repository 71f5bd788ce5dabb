#!/usr/bin/env bash
# kmrd vs nginx: GET /api/v1/artifacts/sha256/{hex} for a stored artifact, and
# nginx serving the same JSON bytes as a static file, measured with wrk in the
# same run. Prints req/s, p99 and the ratio.
#
# Usage: tests/bench/server/bench.sh [KMRD KMR_WORKER]   (default: bazel-bin paths)
# Env:   DURATION (10s), CONNECTIONS (64), THREADS (2), SETS (200), ROUNDS (3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
KMRD=${1:-$root/bazel-bin/server/kmrd}
WORKER=${2:-$root/bazel-bin/server/kmr-worker}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SETS=${SETS:-200}
ROUNDS=${ROUNDS:-3}
for t in wrk nginx python3 curl; do command -v "$t" >/dev/null || { echo "bench: $t not installed" >&2; exit 2; }; done
[[ -x $KMRD && -x $WORKER ]] || { echo "bench: build //server:kmrd //server:kmr-worker first" >&2; exit 2; }

tmp=$(mktemp -d /tmp/kmr-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KPORT=$(port); NPORT=$(port)

# Repository with SETS artifacts and known verdicts; one worker rebuilds them with the fake engine.
python3 - "$tmp" "$SETS" <<'PY'
import hashlib, json, os, sys
tmp, n = sys.argv[1], int(sys.argv[2])
os.makedirs(tmp + "/repo")
idx, expect = {"artifacts": []}, {}
for i in range(n):
    data = os.urandom(256) + str(i).encode()
    fn = "linux-%d.pkg" % i
    open(tmp + "/repo/" + fn, "wb").write(data)
    h = hashlib.sha256(data).hexdigest()
    expect[h] = {"files": "identical", "module_root": "match"} if i % 3 else {"files": "different", "module_root": "mismatch", "differing": ["vmlinuz"]}
    idx["artifacts"].append({"set": "s%d" % i, "name": "linux", "version": "6.8.%d" % i, "arch": "x86_64", "url": fn, "sha256": h})
json.dump(idx, open(tmp + "/repo/index.json", "w"))
json.dump(expect, open(tmp + "/expect.json", "w"))
PY
PUB=$("$WORKER" --gen-key "$tmp/w.pem")
cat > "$tmp/kmrd.json" <<JSON
{"state_dir": "$tmp/state", "log": {"level": "warn"}, "http": {"listen": "127.0.0.1:$KPORT", "threads": 2},
 "sync_interval_seconds": 3600,
 "repositories": [{"name": "bench", "distro": "arch", "url": "file://$tmp/repo/index.json", "format": "kmr-import"}],
 "workers": [{"name": "w", "public_key": "$PUB"}]}
JSON
"$KMRD" --config "$tmp/kmrd.json" > "$tmp/kmrd.log" 2>&1 &
pids+=($!)
KPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$KPORT/healthz" >/dev/null && break; sleep 0.1; done
FAKE_EXPECT=$tmp/expect.json FAKE_SLEEP=0 "$WORKER" --server "http://127.0.0.1:$KPORT" \
  --server-key "$tmp/state/keys/attestation.pem.pub" --key "$tmp/w.pem" \
  --work-dir "$tmp/work" --exit-when-idle --rebuild-command "python3 $root/tests/e2e/fake_rebuild.py" > "$tmp/worker.log" 2>&1
HEX=$(python3 -c 'import json,sys; print(list(json.load(open(sys.argv[1])))[5])' "$tmp/expect.json")
URL_PATH=/api/v1/artifacts/sha256/$HEX
curl -sf "http://127.0.0.1:$KPORT$URL_PATH" > "$tmp/answer.json"
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert a["verdicts"]["files"], a' "$tmp/answer.json"

# nginx: the same JSON bytes as a static file at the same path.
mkdir -p "$tmp/www/api/v1/artifacts/sha256" "$tmp/nginx"
cp "$tmp/answer.json" "$tmp/www$URL_PATH"
chmod 755 "$tmp"; chmod -R a+rX "$tmp/www"   # nginx workers run as www-data
cat > "$tmp/nginx.conf" <<CONF
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  types { application/json json; }
  default_type application/json;
  server { listen 127.0.0.1:$NPORT; root $tmp/www; etag on; }
}
CONF
nginx -c "$tmp/nginx.conf" -g 'daemon off;' &
pids+=($!)
NPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NPORT$URL_PATH" >/dev/null && break; sleep 0.1; done
curl -s "http://127.0.0.1:$NPORT$URL_PATH" > "$tmp/nginx-answer.json"; cmp "$tmp/nginx-answer.json" "$tmp/answer.json" || { echo "bench: nginx serves something else:"; head -c 300 "$tmp/nginx-answer.json"; tail -3 "$tmp/nginx/error.log"; exit 2; }

# CPU time (clock ticks, user + system) of a process and its children (nginx's workers).
cpu_ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [[ -r /proc/$p/stat ]] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
run() { # name url pid -> "rps p99ms non2xx cpu_us_per_request"
  local out c0 c1
  c0=$(cpu_ticks "$3")
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
  c1=$(cpu_ticks "$3")
  echo "$out" > "$tmp/wrk-$1.txt"
  python3 - "$tmp/wrk-$1.txt" "$((c1 - c0))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", t)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
n = int(re.search(r"(\d+) requests in", t).group(1))
cpu_us = int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / max(n, 1)
print("%.0f %.2f %s %.1f" % (rps, p99, errs.group(1) if errs else 0, cpu_us))
PY
}
curl -s "http://127.0.0.1:$KPORT$URL_PATH" >/dev/null  # warm the answer cache
# Alternate kmrd and nginx ROUNDS times so both see the same machine; report each one's median round.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: > "$tmp/rounds"
for r in $(seq "$ROUNDS"); do
  echo "kmrd $(run kmrd "http://127.0.0.1:$KPORT$URL_PATH" "$KPID")" >> "$tmp/rounds"
  echo "nginx $(run nginx "http://127.0.0.1:$NPORT$URL_PATH" "$NPID")" >> "$tmp/rounds"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
median() { # name -> "rps p99 err cpu" of its median round by req/s
  awk -v n="$1" '$1 == n {print $2, $3, $4, $5}' "$tmp/rounds" | sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'
}
read -r k_rps k_p99 k_err k_cpu < <(median kmrd)
read -r n_rps n_p99 n_err n_cpu < <(median nginx)
ratio=$(python3 -c "print('%.2f' % ($k_rps / $n_rps))")
cpu_ratio=$(python3 -c "print('%.2f' % ($k_cpu / $n_cpu))")
echo "GET /api/v1/artifacts/sha256/{hex} ($(wc -c < "$tmp/answer.json") bytes), wrk -t$THREADS -c$CONNECTIONS -d$DURATION, median of $ROUNDS alternating rounds, $(nproc) cores"
echo "  load average before: $load_before  after: $load_after"
awk '{printf "  round  %-5s %8s req/s  p99 %6s ms  server CPU %5s us/request\n", $1, $2, $3, $5}' "$tmp/rounds"
printf "  kmrd   %8s req/s  p99 %6s ms  non-2xx %s  server CPU %s us/request\n" "$k_rps" "$k_p99" "$k_err" "$k_cpu"
printf "  nginx  %8s req/s  p99 %6s ms  non-2xx %s  server CPU %s us/request\n" "$n_rps" "$n_p99" "$n_err" "$n_cpu"
echo "  ratio kmrd/nginx: $ratio   (targets: ratio >= 0.8, kmrd p99 < 2 ms, on an idle machine)"
echo "  server CPU per request kmrd/nginx: $cpu_ratio   (lower is better; less sensitive to other load than req/s)"
