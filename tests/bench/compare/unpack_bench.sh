#!/bin/bash
# kmr diff of a real kernel .deb against the time to unpack both packages,
# in the same run: `dpkg-deb --fsys-tarfile` of each package to /dev/null,
# the two at once (2 cores; dpkg-deb also decodes xz with threads) and one
# after the other; the baseline is the faster of the two. Runs alternate,
# RUNS times each (3); medians of wall and user time and the largest peak RSS
# (/usr/bin/time -f '%e %U %M') are printed with the load average before and
# after, and the ratio kmr wall / baseline wall (target <= 1.2) and kmr peak
# RSS (target <= 256 MiB). The report is checked to be the same in every run.
# Usage: tests/bench/compare/unpack_bench.sh [path/to/kmr] [A.deb B.deb]
#   default packages: the real linux-image .deb in $KMR_TEST_CACHE
#   (/var/cache/kmr-test) and the copy tests/bench/compare/mkdeb.sh makes.
set -eu
cd "$(dirname "$0")/../../.."
KMR=${1:-bazel-bin/rebuilder/cli/kmr}
CACHE=${KMR_TEST_CACHE:-/var/cache/kmr-test}
RUNS=${RUNS:-3}
if [ $# -ge 3 ]; then
  A=$2; B=$3
else
  A=$(ls "$CACHE"/linux-image-6.1.0-*-amd64_*.deb 2>/dev/null | grep -v -e unsigned -e modified | head -1 || true)
  [ -n "$A" ] || { echo "no linux-image .deb in $CACHE (tests/bench/compare/bench.sh downloads one)" >&2; exit 2; }
  B=$CACHE/$(basename "$A" .deb).modified.deb
  [ -f "$B" ] || sh tests/bench/compare/mkdeb.sh "$A" "$B"
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/kmr-unpack-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
time_of() {  # time_of FILE cmd... : one run, "wall user rss_kib" appended to FILE
  local out=$1; shift
  /usr/bin/time -o "$W/t" -f '%e %U %M' "$@"
  tail -1 "$W/t" >> "$out"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$RUNS"); do
  time_of "$W/kmr" bash -c '"$0" diff --json "$1" "$2" "$3" > /dev/null; [ $? -le 1 ]' "$KMR" "$W/k$i.json" "$A" "$B"
  time_of "$W/par" bash -c 'dpkg-deb --fsys-tarfile "$0" > /dev/null & dpkg-deb --fsys-tarfile "$1" > /dev/null; wait' "$A" "$B"
  time_of "$W/ser" bash -c 'dpkg-deb --fsys-tarfile "$0" > /dev/null; dpkg-deb --fsys-tarfile "$1" > /dev/null' "$A" "$B"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 2 "$RUNS"); do
  python3 - "$W/k1.json" "$W/k$i.json" <<'PY' || { echo "kmr reports differ between runs" >&2; exit 1; }
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for j in (a, b): j["summary"].pop("elapsed_ms", None)
sys.exit(a != b)
PY
done
python3 - "$W" "$RUNS" "$load_before" "$load_after" "$A" "$B" <<'PY'
import statistics, sys
w, runs, lb, la, a, b = sys.argv[1:]
def rows(name):
    return [tuple(map(float, l.split())) for l in open(f"{w}/{name}") if l.strip()]
def summary(name):
    r = rows(name)
    return statistics.median(x[0] for x in r), statistics.median(x[1] for x in r), max(x[2] for x in r) / 1024, [x[0] for x in r]
k, p, s = summary("kmr"), summary("par"), summary("ser")
base = min(p[0], s[0])
print(f"packages: {a} vs {b}; {runs} runs each, alternating; load average before {lb}, after {la}")
print(f"kmr diff:                        wall {k[0]:.2f} s (runs {k[3]})  user {k[1]:.2f} s  peak RSS {k[2]:.0f} MiB")
print(f"dpkg-deb --fsys-tarfile, both at once:   wall {p[0]:.2f} s (runs {p[3]})  user {p[1]:.2f} s")
print(f"dpkg-deb --fsys-tarfile, one after other: wall {s[0]:.2f} s (runs {s[3]})  user {s[1]:.2f} s")
print(f"ratio kmr wall / unpack wall = {k[0] / base:.3f} (target <= 1.2); user ratio {k[1] / p[1]:.3f}; "
      f"peak RSS {k[2]:.0f} MiB (target <= 256)")
PY
