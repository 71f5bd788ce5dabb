#!/usr/bin/env bash
# kmod benchmark (issue 3): `kmr modules verify` on an Arch-sized installed
# module tree (6,000 .ko.zst modules, ~450 MB decompressed, valid Merkle
# proofs, a vmlinux carrying the root) against the floor pipeline
#   find ... -name '*.ko.zst' -print0 | xargs -0 zstd -dc | sha256sum
# over the same files, in the same run. Prints both wall times, the ratio
# (target <= 0.5) and kmr's peak RSS (target < 256 MB).
#   KMR=path/to/kmr   (default: bazel build //rebuilder/cli:kmr)
#   BENCH_DIR=dir     (default: a temp dir; the set is kept there if given)
#   COUNT=6000 TOTAL_MB=450 RUNS=3
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
COUNT=${COUNT:-6000}
TOTAL_MB=${TOTAL_MB:-450}
RUNS=${RUNS:-3}
PYTHON=python3
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
for tool in zstd objcopy gcc /usr/bin/time sha256sum; do
  command -v "$tool" > /dev/null || { echo "bench: needs $tool" >&2; exit 2; }
done
if [[ -z ${KMR:-} ]]; then
  (cd "$root" && bazel build //rebuilder/cli:kmr > /dev/null)
  KMR="$(cd "$root" && bazel info bazel-bin 2>/dev/null)/rebuilder/cli/kmr"
fi
if [[ -n ${BENCH_DIR:-} ]]; then
  W="$BENCH_DIR"
  mkdir -p "$W"
else
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
fi
T="$W/lib/modules/6.99.0-bench"

if [[ ! -f "$W/.complete" ]]; then
  rm -rf "$W/build" "$W/lib" "$W/proofs"
  echo "== generating $COUNT modules (~$TOTAL_MB MB)"
  $PYTHON "$here/gen_modules.py" "$W" --count "$COUNT" --total-mb "$TOTAL_MB"
  echo "== proofs and root (independent Python implementation)"
  $PYTHON "$root/tests/fixtures/merkle/modules_merkle_tree.py" root --section "$W/section.bin" "$W/build/modules.order"
  $PYTHON "$root/tests/fixtures/merkle/modules_merkle_tree.py" proofs "$W/build/modules.order" "$W/proofs"
  echo "== installing (proof appended, zstd)"
  mkdir -p "$T"
  sed 's|^\(.*\)\.o$|kernel/\1.ko|' "$W/build/modules.order" > "$T/modules.order"
  (cd "$W/build" && find . -name '*.ko' -printf '%P\n') | while read -r rel; do
    mkdir -p "$T/kernel/$(dirname "$rel")"
    cat "$W/build/$rel" "$W/proofs/${rel%.ko}.merkle" > "$T/kernel/$rel"
  done
  find "$T/kernel" -name '*.ko' -print0 | xargs -0 -n 200 -P 2 zstd -q --rm -9
  echo 'int main(void){return 0;}' > "$W/k.c"
  gcc -o "$W/vmlinux.blank" "$W/k.c"
  mkdir -p "$T/build"
  objcopy --add-section .module_hashes="$W/section.bin" --set-section-flags .module_hashes=alloc,readonly \
    "$W/vmlinux.blank" "$T/build/vmlinux" 2> /dev/null
  rm -rf "$W/build" "$W/proofs"
  touch "$W/.complete"
fi
files=$(find "$T/kernel" -name '*.ko.zst' | wc -l)
raw=$(find "$T/kernel" -name '*.ko.zst' -print0 | xargs -0 zstd -lv 2>/dev/null | awk '/Decompressed Size:/ {gsub(/[(),]/,""); for (i=1;i<=NF;i++) if ($i=="B") s+=$(i-1)} END {printf "%.0f", s/1048576}')
echo "== set: $files .ko.zst files, $(du -sm "$T/kernel" | cut -f1) MB compressed, ~${raw} MB decompressed"

now() { date +%s.%N; }
# Warm the page cache for both.
find "$T/kernel" -name '*.ko.zst' -print0 | xargs -0 cat > /dev/null

run_a() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f '%M %U %S' -o "$W/rss.txt" "$KMR" modules verify --json "$T" > "$W/verify.json"
  t1=$(now)
  a=$(awk "BEGIN {print $t1 - $t0}")
}
run_b() {
  local t0 t1
  t0=$(now)
  (cd "$T" && /usr/bin/time -f '%U %S' -o "$W/cpu_b.txt" sh -c "find . -name '*.ko.zst' -print0 | xargs -0 zstd -dc | sha256sum > /dev/null")
  t1=$(now)
  b=$(awk "BEGIN {print $t1 - $t0}")
}
best_a=999999; best_b=999999; rss=0; ratios=()
for ((r = 1; r <= RUNS; r++)); do
  # Alternate the order so neither side always runs first.
  if ((r % 2)); then run_a; run_b; else run_b; run_a; fi
  ratios+=("$(awk "BEGIN {print $a / $b}")")
  read -r kb ua sa < "$W/rss.txt"
  read -r ub sb < "$W/cpu_b.txt"
  printf 'run %d: kmr modules verify %.3f s wall, %.2f s CPU, peak RSS %d MB | zstd -dc | sha256sum %.3f s wall, %.2f s CPU | ratio %.3f\n' \
    "$r" "$a" "$(awk "BEGIN {print $ua + $sa}")" $((kb / 1024)) "$b" "$(awk "BEGIN {print $ub + $sb}")" "${ratios[-1]}"
  if awk "BEGIN {exit !($a < $best_a)}"; then best_a=$a; fi
  if awk "BEGIN {exit !($b < $best_b)}"; then best_b=$b; fi
  if ((kb > rss)); then rss=$kb; fi
done
$PYTHON - "$W/verify.json" << 'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"verify: verified={d['verified']} failed={d['failed']} unauthenticated={d['unauthenticated']} ok={d['ok']}")
sys.exit(0 if d["ok"] else 1)
PY
ratio=$(awk "BEGIN {print $best_a / $best_b}")
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
printf 'RESULT %d runs: best kmr %.3f s, best floor pipeline %.3f s, ratio of bests %.3f, median per-run ratio %.3f (target <= 0.5); kmr peak RSS %d MB (target < 256); load average %s\n' \
  "$RUNS" "$best_a" "$best_b" "$ratio" "$median" $((rss / 1024)) "$(cut -d' ' -f1 /proc/loadavg)"
