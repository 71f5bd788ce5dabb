#!/bin/bash
# Benchmark: `kmr inspect --json PKG` against the floor `dpkg-deb --fsys-tarfile
# PKG > /dev/null` (xz decompression of data.tar). Runs both alternately RUNS
# times (default 5) and compares medians of wall time and of CPU time
# (user+sys; steadier when the machine is shared).
# The same kmr with KMR_INSPECT_SIGNATURES=0 (PKCS#7 module signatures not
# checked; everything else as usual) is timed in the same alternating runs:
# its ratio is what signature checking costs (target <= 1.2).
# With KMR_BASE=<another kmr binary> (e.g. one built before module-signature
# checking) it is timed in the same alternating runs and compared as well.
# usage: inspect_bench.sh [PACKAGE.deb] [RUNS]
set -euo pipefail
KMR="${KMR:-}"
if [ -z "$KMR" ]; then
  for c in "${RUNFILES_DIR:-$0.runfiles}/kmr/rebuilder/cli/kmr" "$(dirname "$0")/../../../rebuilder/cli/kmr"; do
    [ -x "$c" ] && KMR="$c" && break
  done
fi
[ -x "$KMR" ] || { echo "kmr binary not found (set KMR=)"; exit 2; }
DEB="${1:-}"
[ -n "$DEB" ] || DEB="$(ls /var/cache/kmr-test/linux-image-6.1.0-*-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -1)"
RUNS="${2:-5}"
[ -f "$DEB" ] || { echo "no package (run //tests/realdeb:realdeb_test first or pass a .deb)"; exit 2; }

TIMEFORMAT='%R %U %S'
measure() {  # prints "wall cpu"
  local t
  t=$( { time "$@" > /dev/null; } 2>&1 )
  awk '{printf "%.3f %.3f\n", $1, $2 + $3}' <<< "$t"
}
declare -a DW DC KW KC NW NC BW BC
for i in $(seq "$RUNS"); do
  read -r dw dc < <(measure dpkg-deb --fsys-tarfile "$DEB")
  read -r kw kc < <(measure "$KMR" inspect --json "$DEB")
  read -r nw nc < <(KMR_INSPECT_SIGNATURES=0 measure "$KMR" inspect --json "$DEB")
  DW+=("$dw"); DC+=("$dc"); KW+=("$kw"); KC+=("$kc"); NW+=("$nw"); NC+=("$nc")
  base=""
  if [ -n "${KMR_BASE:-}" ]; then
    read -r bw bc < <(measure "$KMR_BASE" inspect --json "$DEB")
    BW+=("$bw"); BC+=("$bc"); base=" | base ${bw}s wall ${bc}s cpu"
  fi
  echo "run $i: dpkg-deb ${dw}s wall ${dc}s cpu | kmr inspect ${kw}s wall ${kc}s cpu | no signature check ${nw}s wall ${nc}s cpu$base"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk -v k="$1" -v d="$2" 'BEGIN{printf "%.3f", k/d}'; }
mdw=$(median "${DW[@]}"); mdc=$(median "${DC[@]}"); mkw=$(median "${KW[@]}"); mkc=$(median "${KC[@]}")
echo "package: $(basename "$DEB") ($(stat -c %s "$DEB") bytes), cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median dpkg-deb --fsys-tarfile: ${mdw}s wall, ${mdc}s cpu"
echo "median kmr inspect --json:      ${mkw}s wall, ${mkc}s cpu"
mnw=$(median "${NW[@]}"); mnc=$(median "${NC[@]}")
echo "median kmr inspect, no signature check (KMR_INSPECT_SIGNATURES=0): ${mnw}s wall, ${mnc}s cpu"
echo "ratio kmr/dpkg-deb: wall $(ratio "$mkw" "$mdw"), cpu $(ratio "$mkc" "$mdc")"
echo "ratio with/without signature checks: wall $(ratio "$mkw" "$mnw"), cpu $(ratio "$mkc" "$mnc") (target <= 1.2)"
if [ -n "${KMR_BASE:-}" ]; then
  mbw=$(median "${BW[@]}"); mbc=$(median "${BC[@]}")
  echo "median base kmr inspect --json:  ${mbw}s wall, ${mbc}s cpu (ratio to dpkg-deb: wall $(ratio "$mbw" "$mdw"), cpu $(ratio "$mbc" "$mdc"))"
  echo "ratio kmr/base: wall $(ratio "$mkw" "$mbw"), cpu $(ratio "$mkc" "$mbc") (target <= 1.2)"
fi
