#!/bin/bash
# kmr diff vs diffoscope, in one run, printing ratios kmr/diffoscope.
#   (1) two tars of 200 gcc-compiled .ko-like objects, 10 differing (target <= 0.05)
#   (2) the real Debian kernel .deb vs a copy with 4 modules changed and the
#       package rebuilt with dpkg-deb -b (target: kmr < 60 s; diffoscope gets
#       a timeout, its time or "timed out" is reported)
# Usage: tests/bench/compare/bench.sh [path/to/kmr]   (default: bazel-bin)
# Also checks that both tools report the same differing leaf paths.
set -eu
cd "$(dirname "$0")/../../.."
KMR=${1:-bazel-bin/rebuilder/cli/kmr}
CACHE=${KMR_TEST_CACHE:-/var/cache/kmr-test}
DTIMEOUT=${DIFFOSCOPE_TIMEOUT:-900}
W=$(mktemp -d "${TMPDIR:-/tmp}/kmr-bench-compare.XXXXXX")
trap 'rm -rf "$W"' EXIT
LEAVES="python3 rebuilder/compare/leaf_paths.py"
now() { date +%s.%N; }
secs() { python3 -c "print('%.2f' % ($2 - $1))"; }

echo "== (1) 200-module tar pair, 10 differing"
P=$CACHE/bench-compare-200
if [ ! -f "$P/a.tar" ] || [ ! -f "$P/b.tar" ]; then
  mkdir -p "$CACHE"; sh rebuilder/compare/testdata/gen_modules.sh "$P" 200 10 > /dev/null
fi
best=""
for i in 1 2 3; do
  t0=$(now); "$KMR" diff --json "$W/k1.json" "$P/a.tar" "$P/b.tar" > /dev/null || [ $? -eq 1 ]; t1=$(now)
  t=$(secs "$t0" "$t1"); best=$(python3 -c "print(min(float('$t'), float('${best:-1e9}')))")
done
t0=$(now); timeout "$DTIMEOUT" diffoscope --json "$W/d1.json" "$P/a.tar" "$P/b.tar" > /dev/null 2>&1 || true; t1=$(now)
d1=$(secs "$t0" "$t1")
r1=$(python3 -c "print('%.4f' % ($best / $d1))")
$LEAVES "$W/k1.json" > "$W/k1.l"; $LEAVES "$W/d1.json" > "$W/d1.l"
same1=$(cmp -s "$W/k1.l" "$W/d1.l" && echo yes || echo NO)
echo "kmr ${best}s (best of 3)  diffoscope ${d1}s  ratio kmr/diffoscope = $r1 (target <= 0.05)  leaf paths equal: $same1 ($(wc -l < "$W/k1.l"))"

echo "== (2) real Debian kernel .deb, 4 modules changed, package rebuilt"
ORIG=$(ls "$CACHE"/linux-image-6.1.0-*-amd64_*.deb 2>/dev/null | grep -v unsigned | head -1 || true)
if [ -z "$ORIG" ]; then
  pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1)
  (cd "$CACHE" && apt-get download "$pkg" > /dev/null)
  ORIG=$(ls "$CACHE"/linux-image-6.1.0-*-amd64_*.deb | head -1)
fi
MOD=$CACHE/$(basename "$ORIG" .deb).modified.deb
[ -f "$MOD" ] || sh tests/bench/compare/mkdeb.sh "$ORIG" "$MOD"
t0=$(now); "$KMR" diff --json "$W/k2.json" "$ORIG" "$MOD" > /dev/null || [ $? -eq 1 ]; t1=$(now)
k2=$(secs "$t0" "$t1")
t0=$(now); rc=0; timeout "$DTIMEOUT" diffoscope --json "$W/d2.json" "$ORIG" "$MOD" > /dev/null 2>&1 || rc=$?; t1=$(now)
d2=$(secs "$t0" "$t1")
if [ $rc -eq 124 ]; then
  echo "kmr ${k2}s (target < 60 s)  diffoscope TIMED OUT after ${DTIMEOUT}s  ratio < $(python3 -c "print('%.4f' % ($k2 / $DTIMEOUT))")"
else
  r2=$(python3 -c "print('%.4f' % ($k2 / $d2))")
  $LEAVES "$W/k2.json" > "$W/k2.l"; $LEAVES "$W/d2.json" > "$W/d2.l"
  same2=$(cmp -s "$W/k2.l" "$W/d2.l" && echo yes || echo NO)
  echo "kmr ${k2}s (target < 60 s)  diffoscope ${d2}s  ratio kmr/diffoscope = $r2  leaf paths equal: $same2 ($(wc -l < "$W/k2.l"))"
fi
python3 -c "import json; print('kmr summary:', json.load(open('$W/k2.json'))['summary'])"
