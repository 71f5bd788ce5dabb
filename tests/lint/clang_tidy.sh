#!/usr/bin/env bash
# clang-tidy (the checks in /.clang-tidy: bugprone-*, performance-*) over the code
# that reads untrusted bytes: rebuilder/archive, rebuilder/kmod, rebuilder/net,
# rebuilder/compare (tests and fuzz drivers excluded) and kmrd's network front:
# the HTTP server, Range and token parsing, the JSON limits and the two APIs.
# Every finding fails.
# Usage: tests/lint/clang_tidy.sh [FILE.cc...]   (default: those packages)
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
[[ -f $here/.clang-tidy ]] || here=${TEST_SRCDIR:-}/kmr
cd "$here" || exit 2
source tests/lib/require.sh
tidy=$(command -v clang-tidy-14 || command -v clang-tidy) || kmr_skip "clang-tidy not installed (Debian package clang-tidy)"
if (($#)); then files=("$@"); else
  files=()
  for f in rebuilder/archive/*.cc rebuilder/kmod/*.cc rebuilder/net/*.cc rebuilder/compare/*.cc; do
    [[ $f == *_test.cc || $f == */test_* || $f == *fuzz* ]] || files+=("$f")
  done
  files+=(server/http_server.cc server/byte_range.cc server/auth.cc server/json_limits.cc
          server/api.cc server/rebuilderd_api.cc)
fi
# (Asio finds C++20 coroutines by itself under GCC, not under clang with libstdc++)
flags=(-std=c++20 -I. -DBOOST_ASIO_NO_DEPRECATED -DBOOST_BEAST_USE_STD_STRING_VIEW
       -DBOOST_ASIO_HAS_CO_AWAIT -DBOOST_ASIO_HAS_STD_COROUTINE)
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
jobs=$(nproc)
i=0
for f in "${files[@]}"; do
  ( "$tidy" --quiet "$f" -- "${flags[@]}" > "$out/$i.log" 2>&1; echo $? > "$out/$i.rc" ) &
  i=$((i + 1))
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n; done
done
wait
bad=0
for ((k = 0; k < i; k++)); do
  if [[ $(cat "$out/$k.rc") != 0 ]]; then
    bad=$((bad + 1))
    echo "FINDINGS in ${files[$k]}:"; grep -E "(error|warning):" "$out/$k.log" | head -20
  fi
done
echo "clang-tidy: ${#files[@]} files, $bad with findings"
((bad == 0))
