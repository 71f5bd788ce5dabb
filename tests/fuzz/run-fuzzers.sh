#!/usr/bin/env bash
# Builds every libFuzzer target (tag "fuzzer", made by kmr_cc_fuzz_test) with
# clang (--config=fuzz, own output base) and runs each for a short time on a
# copy of its seed corpus. Exits non-zero if any target crashes.
#   FUZZ_SECONDS=10  time per target
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${FUZZ_SECONDS:-10}
OB="$HOME/.cache/bazel-fuzz"
BAZEL=(bazel --output_base="$OB")
# Bazel links with the clang C driver; UBSan's vptr check needs the C++ runtime.
FLAGS=(--config=fuzz --linkopt=-fsanitize-link-c++-runtime)

# Query the real top-level directories: convenience symlinks (bazel-main ->
# execroot) would make //... walk into Bazel's own tree.
scope=()
for d in */; do
  d=${d%/}
  [[ -L $d || $d == bazel-* || $d == node_modules ]] && continue
  scope+=("//$d/...")
done
query="attr(tags, fuzzer, $(IFS=+; echo "${scope[*]}"))"
mapfile -t targets < <("${BAZEL[@]}" query --keep_going "$query" 2>/dev/null)
if ((${#targets[@]} == 0)); then
  echo "run-fuzzers: no fuzz targets found" >&2
  exit 1
fi
echo "run-fuzzers: ${#targets[@]} target(s), ${SECS}s each"
if ! "${BAZEL[@]}" build "${FLAGS[@]}" "${targets[@]}"; then
  echo "run-fuzzers: fuzz build failed" >&2
  exit 1
fi
bin=$("${BAZEL[@]}" info "${FLAGS[@]}" bazel-bin 2>/dev/null)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  pkg=${t#//}
  pkg=${pkg%%:*}
  name=${t##*:}
  replay=${name%_fuzzer}
  # The corpus directory: the data files of the replay test.
  corpus_file=$("${BAZEL[@]}" query "labels(data, //$pkg:$replay)" 2>/dev/null | head -1)
  dir="$work/$name"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [[ -n $corpus_file ]]; then
    rel=${corpus_file#//}
    rel=${rel/://}
    cp -r "$(dirname "$rel")/." "$dir/corpus/"
  fi
  echo "== $t"
  if ! "$bin/$pkg/$name" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2560 \
      -artifact_prefix="$dir/artifacts/" "$dir/corpus" > "$dir/log" 2>&1; then
    echo "CRASH in $t; last lines:" >&2
    tail -40 "$dir/log" >&2
    mkdir -p /tmp/kmr-fuzz-crashes
    cp -r "$dir/artifacts/." /tmp/kmr-fuzz-crashes/ 2>/dev/null
    failed+=("$t")
  else
    grep -E '^Done [0-9]+ runs' "$dir/log" || true
  fi
done
if ((${#failed[@]})); then
  echo "run-fuzzers: ${#failed[@]} target(s) crashed: ${failed[*]} (inputs in /tmp/kmr-fuzz-crashes)" >&2
  exit 1
fi
echo "run-fuzzers: all ${#targets[@]} target(s) ran clean"
