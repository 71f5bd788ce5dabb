#!/bin/bash
# Every command of kmr, and kmrd and kmr-worker, parse their flags with the one
# parser (rebuilder/base/flags.h): --help exits 0 with a generated "Usage:" and
# "Options:" section; an unknown option, a missing value and a bad integer give
# one message form and exit 2; `--` ends the options.
set -u
KMR=${KMR:-rebuilder/cli/kmr}; KMR=$(cd "$(dirname "$KMR")" && pwd)/$(basename "$KMR")
KMRD=${KMRD:-server/kmrd}
WORKER=${WORKER:-server/kmr-worker}
T=${TEST_TMPDIR:-$(mktemp -d)}; mkdir -p "$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
pass() { echo "ok: $*"; }
# expect PROG-NAME RC STDERR-LINE cmd...: exit status and the exact first line of stderr.
expect() {
  local name=$1 want=$2 line=$3; shift 3
  "$@" > "$T/out" 2> "$T/err"; local rc=$?
  local got; got=$(head -n 1 "$T/err")
  if [ "$rc" -ne "$want" ]; then fail "$name: rc $rc, want $want ($*)"; return; fi
  if [ "$got" != "$line" ]; then fail "$name: stderr '$got', want '$line'"; return; fi
  pass "$name: $line"
}

# The registered commands, from kmr's own help ("  name words   summary").
# The name column is 18 wide (rebuilder/cli/main.cc).
mapfile -t commands < <("$KMR" --help | sed -n '/^Commands:/,/^$/p' | grep '^  [a-z]' | cut -c3-20 | sed 's/ *$//')
[ "${#commands[@]}" -ge 9 ] || fail "kmr --help lists ${#commands[@]} commands, expected at least 9"
for c in "${commands[@]}"; do
  read -r -a words <<< "$c"
  "$KMR" "${words[@]}" --help > "$T/help" 2> "$T/err"; rc=$?
  [ $rc -eq 0 ] || fail "kmr $c --help: rc $rc"
  head -n 1 "$T/help" | grep -q "^Usage: kmr $c" || fail "kmr $c --help: first line $(head -n 1 "$T/help")"
  grep -q '^Options:$' "$T/help" || fail "kmr $c --help: no Options: section"
  grep -q '^  -h, --help ' "$T/help" || fail "kmr $c --help: --help not listed"
  expect "kmr $c unknown" 2 "kmr $c: unknown option '--no-such-flag' (see 'kmr $c --help')" \
    "$KMR" "${words[@]}" --no-such-flag x
  expect "kmr $c =value on a boolean-free name" 2 "kmr $c: unknown option '--x' (see 'kmr $c --help')" \
    "$KMR" "${words[@]}" --x=1
done

# One valued flag per command: missing at the end, empty with '='.
declare -A valued=(
  [rebuild]=--out [diff]=--json [inspect]=--keyring [merkle]=--suffix [vmlinux root]=--expect-root
  [modules verify]=--vmlinux [image mask]="" [key generate]=--out [attest verify]=--key [query]=--file
)
for c in "${!valued[@]}"; do
  f=${valued[$c]}; [ -n "$f" ] || continue
  read -r -a words <<< "$c"
  expect "kmr $c $f missing" 2 "kmr $c: $f needs a value (see 'kmr $c --help')" "$KMR" "${words[@]}" x "$f"
  expect "kmr $c $f=" 2 "kmr $c: $f needs a non-empty value (see 'kmr $c --help')" "$KMR" "${words[@]}" x "$f="
done

# Bad integers, one message form.
expect "diff --jobs" 2 "kmr diff: --jobs: 'many' is not an integer from 1 to 64 (see 'kmr diff --help')" \
  "$KMR" diff --jobs many a b
expect "merkle --threads" 2 "kmr merkle: --threads: '0' is not an integer from 1 to 256 (see 'kmr merkle --help')" \
  "$KMR" merkle --threads 0 x
expect "rebuild --timeout" 2 "kmr rebuild: --timeout: '-5' is not an integer from 1 to 31536000 (see 'kmr rebuild --help')" \
  "$KMR" rebuild --timeout -5 x
expect "rebuild --out twice" 2 "kmr rebuild: --out given twice (see 'kmr rebuild --help')" \
  "$KMR" rebuild --out a --out b x
expect "rebuild --build-root" 2 "kmr rebuild: --build-root: host or archive, not 'cloud' (see 'kmr rebuild --help')" \
  "$KMR" rebuild --build-root cloud x
expect "diff positional count" 2 "kmr diff: expected at least 2 INPUT arguments, got 1 (see 'kmr diff --help')" \
  "$KMR" diff a

expect "rebuild --repository alone" 2 \
  "kmr rebuild: --repository needs --repository-key (the keyring its Release must verify with) (see 'kmr rebuild --help')" \
  "$KMR" rebuild --repository https://deb.example/dists/x/InRelease x
expect "unknown command, escaped" 2 "kmr: unknown command '\\x1b[2J'" "$KMR" $'\x1b[2J'

# `--` ends the options: a file named like a flag is compared, not parsed.
printf 'a\n' > "$T/--json"; printf 'a\n' > "$T/same"
( cd "$T" && "$KMR" diff -- --json same ) > /dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && pass "diff -- --json same: identical" || fail "diff -- --json same: rc $rc"

# kmrd and kmr-worker.
for prog in "$KMRD:kmrd" "$WORKER:kmr-worker"; do
  bin=${prog%%:*}; name=${prog##*:}
  "$bin" --help > "$T/help"; rc=$?
  [ $rc -eq 0 ] && head -n 1 "$T/help" | grep -q "^Usage: $name" && grep -q '^Options:$' "$T/help" \
    && pass "$name --help" || fail "$name --help: rc $rc, $(head -n 1 "$T/help")"
  expect "$name unknown" 2 "$name: unknown option '--no-such-flag' (see '$name --help')" "$bin" --no-such-flag
  expect "$name --config missing" 2 "$name: --config needs a value (see '$name --help')" "$bin" --config
  "$bin" --version > "$T/out"; grep -q "^$name " "$T/out" && pass "$name --version" || fail "$name --version"
done
expect "kmr-worker --idle-seconds" 2 \
  "kmr-worker: --idle-seconds: 'soon' is not a number from 0 to 86400 (see 'kmr-worker --help')" \
  "$WORKER" --idle-seconds soon
expect "kmrd stray argument" 2 "kmrd: unexpected argument 'stray' (see 'kmrd --help')" "$KMRD" stray

echo "$fails failure(s)"
[ $fails -eq 0 ]
