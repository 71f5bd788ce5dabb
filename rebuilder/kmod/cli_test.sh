#!/usr/bin/env bash
# kmr merkle / vmlinux root / modules verify end to end: the C++ CLI against
# the independent Python implementation on generated trees, JSON contracts and
# exit codes.
set -euo pipefail
KMR="$PWD/rebuilder/cli/kmr"
PYTHON=python3
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3  # pyenv shims cost ~1 s per call
PY="$PYTHON $PWD/tests/fixtures/merkle/modules_merkle_tree.py"
T="${TEST_TMPDIR:-$(mktemp -d)}"
cd "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { # expected_rc cmd...
  local want=$1; shift
  set +e; "$@" > out.txt 2> err.txt; local rc=$?; set -e
  [[ $rc == "$want" ]] || { cat out.txt err.txt >&2; fail "$* exited $rc, expected $want"; }
}
json() { $PYTHON -c "import json,sys; d=json.load(open('out.txt')); print($1)"; }

# 1. Cross-check on several generated build trees (sizes around powers of two).
for n in 1 2 3 5 8 9 33; do
  rm -rf b$n && mkdir -p b$n/drivers/net && : > b$n/modules.order
  for ((i = 0; i < n; i++)); do
    head -c $(( (i * 4099) % 70000 + 1 )) /dev/urandom > b$n/drivers/net/m$i.ko
    echo drivers/net/m$i.o >> b$n/modules.order
  done
  want=$($PY root b$n/modules.order)
  expect_rc 0 "$KMR" merkle --json b$n/modules.order
  got="$(json 'd["levels"]') $(json 'd["root"]')"
  [[ "$want" == "$got" ]] || fail "n=$n python '$want' kmr '$got'"
  [[ $(json 'd["count"]') == "$n" ]] || fail "count $n"
  [[ $(json 'sorted(d.keys())') == "['count', 'levels', 'root']" ]] || fail "json fields"
  # Proofs byte for byte.
  $PY proofs b$n/modules.order pyproofs$n
  expect_rc 0 "$KMR" merkle --proofs b$n/modules.order
  for ((i = 0; i < n; i++)); do
    cmp -s b$n/drivers/net/m$i.ko.merkle pyproofs$n/drivers/net/m$i.ko.merkle || fail "proof $n/$i differs"
  done
done
# --suffix
mkdir -p s && echo 'x' > s/a.ko.stripped && echo a.o > s/modules.order
expect_rc 0 "$KMR" merkle --json --suffix .ko.stripped s/modules.order
[[ "$(json 'd["levels"]') $(json 'd["root"]')" == "$($PY root --suffix .ko.stripped s/modules.order)" ]] || fail suffix

# 2. Installed tree with a vmlinux carrying the root.
n=9
$PY root --section sec.bin b$n/modules.order > /dev/null
D=inst/lib/modules/6.99.0-test
mkdir -p $D/kernel/drivers/net
sed 's|^\(.*\)\.o$|kernel/\1.ko|' b$n/modules.order > $D/modules.order
for ((i = 0; i < n; i++)); do
  cat b$n/drivers/net/m$i.ko pyproofs$n/drivers/net/m$i.ko.merkle > $D/kernel/drivers/net/m$i.ko
done
zstd -q --rm $D/kernel/drivers/net/m[0-3].ko
xz $D/kernel/drivers/net/m4.ko
gzip $D/kernel/drivers/net/m5.ko
echo 'int main(void){return 0;}' > k.c && gcc -o vmlinux.blank k.c
objcopy --add-section .module_hashes=sec.bin --set-section-flags .module_hashes=alloc,readonly vmlinux.blank $D/build-vmlinux 2>/dev/null
mkdir -p $D/build && mv $D/build-vmlinux $D/build/vmlinux

expect_rc 0 "$KMR" vmlinux root --json $D/build/vmlinux
[[ $(json 'd["source"]') == elf-section ]] || fail source
[[ "$(json 'd["levels"]') $(json 'd["root"]')" == "$($PY root b$n/modules.order)" ]] || fail "vmlinux root"
expect_rc 0 "$KMR" modules verify --json $D
[[ $(json 'd["verified"]') == 9 && $(json 'd["ok"]') == True && $(json 'd["failed"]') == 0 ]] || fail verify
expect_rc 0 "$KMR" modules verify $D
grep -q 'result: verified' out.txt || fail "text output"

# bzImage-free vmlinux.xz given explicitly
xz -c $D/build/vmlinux > vmlinux.xz
expect_rc 0 "$KMR" modules verify --json --vmlinux vmlinux.xz $D

# 3. Not verified (exit 1): a tampered module, an unsigned module.
cp -r inst bad
zstd -dq --rm bad/lib/modules/6.99.0-test/kernel/drivers/net/m0.ko.zst
printf 'X' | dd of=bad/lib/modules/6.99.0-test/kernel/drivers/net/m0.ko bs=1 seek=0 conv=notrunc 2>/dev/null
cp b$n/drivers/net/m8.ko bad/lib/modules/6.99.0-test/kernel/drivers/net/m8.ko
expect_rc 1 "$KMR" modules verify --json bad/lib/modules/6.99.0-test
[[ $(json 'd["failed"]') == 1 && $(json 'd["unauthenticated"]') == 1 && $(json 'd["ok"]') == False ]] || fail "bad tree counts"
[[ $(json 'd["failures"][0]["module"]') == kernel/drivers/net/m0.ko ]] || fail "failure listed"
json 'd["failures"][0]["reason"]' | grep -q '^wrong root' || fail "failure reason"

# 4. Absent hashes (exit 1), errors (exit 2).
expect_rc 1 "$KMR" vmlinux root --json vmlinux.blank
[[ $(cat out.txt) == '{"module_hashes":"absent"}' ]] || fail absent
expect_rc 1 "$KMR" modules verify --json --vmlinux vmlinux.blank $D
expect_rc 2 "$KMR" vmlinux root /nonexistent
grep -q '/nonexistent' err.txt || fail "error names file"
$PYTHON -c "import sys; b=bytearray(0x210); b[0x202:0x206]=b'HdrS'; open('tiny','wb').write(b)"
expect_rc 2 "$KMR" vmlinux root tiny
grep -q "tiny: truncated setup header" err.txt || fail "bzImage message"
mkdir -p e && : > e/modules.order
expect_rc 2 "$KMR" modules verify --vmlinux $D/build/vmlinux e
grep -q 'empty modules.order' err.txt || fail "empty order message"
echo '../../etc/passwd.o' > e/modules.order
expect_rc 2 "$KMR" merkle e/modules.order
grep -q "'..' in path" err.txt || fail "dotdot message"
expect_rc 2 "$KMR" merkle --bogus e/modules.order
expect_rc 0 "$KMR" merkle --help
expect_rc 0 "$KMR" modules verify --help
expect_rc 0 "$KMR" vmlinux root --help
echo PASS
