#!/bin/bash
# Benchmark: `kmr inspect --json PKG` against the floor `dpkg-deb --fsys-tarfile
# PKG > /dev/null` (xz decompression of data.tar). Runs both alternately
# RUNS times (default 5) and compares the medians of wall time.
# usage: inspect_bench.sh [PACKAGE.deb] [RUNS]
set -euo pipefail
KMR="${KMR:-}"
if [ -z "$KMR" ]; then
  for c in "${RUNFILES_DIR:-$0.runfiles}/kmr/rebuilder/cli/kmr" "$(dirname "$0")/../../../rebuilder/cli/kmr"; do
    [ -x "$c" ] && KMR="$c" && break
  done
fi
[ -x "$KMR" ] || { echo "kmr binary not found (set KMR=)"; exit 2; }
DEB="${1:-$(ls /var/cache/kmr-test/linux-image-6.1.0-*-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -1)}"
RUNS="${2:-5}"
[ -f "$DEB" ] || { echo "no package (run tests/realdeb first or pass a .deb)"; exit 2; }

now() { date +%s.%N; }
declare -a K D
for i in $(seq "$RUNS"); do
  t0=$(now); dpkg-deb --fsys-tarfile "$DEB" > /dev/null; t1=$(now)
  "$KMR" inspect --json "$DEB" > /dev/null; t2=$(now)
  D+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')"); K+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.3f", b-a}')")
  echo "run $i: dpkg-deb ${D[-1]}s  kmr inspect ${K[-1]}s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
MD=$(median "${D[@]}"); MK=$(median "${K[@]}")
RATIO=$(awk -v k="$MK" -v d="$MD" 'BEGIN{printf "%.3f", k/d}')
echo "package: $(basename "$DEB") ($(stat -c %s "$DEB") bytes), cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median dpkg-deb --fsys-tarfile: ${MD}s"
echo "median kmr inspect --json:      ${MK}s"
echo "ratio kmr/dpkg-deb: $RATIO (target <= 1.2)"
