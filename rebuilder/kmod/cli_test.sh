#!/usr/bin/env bash
# kmr merkle / vmlinux root / modules verify end to end: the C++ CLI against
# the independent Python implementation on generated trees, JSON contracts and
# exit codes.
set -euo pipefail
SRC="$PWD"
KMR="$SRC/rebuilder/cli/kmr"
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
    cmp -s b$n/drivers/net/m$i.merkle pyproofs$n/drivers/net/m$i.merkle || fail "proof $n/$i differs"
    [[ ! -e b$n/drivers/net/m$i.ko.merkle ]] || fail "proof written as m$i.ko.merkle"
  done
done

# 1b. Conformance data (cross-checked against the kernel's own tool): the module
# files of three sets, every listed proof file byte for byte at <stem>.merkle.
VECTORS="$SRC/tests/conformance/merkle-vectors.json"
for c in 1 7 1000; do
  $PYTHON - "$VECTORS" $c v$c <<'PY'
import json, os, sys
case = json.load(open(sys.argv[1]))["cases"][sys.argv[2]]
n, d = case["count"], sys.argv[3]
os.makedirs(d + "/drivers", exist_ok=True)
with open(d + "/modules.order", "w") as order:
    for i in range(n):
        open(f"{d}/drivers/mod{i:05d}.ko", "w").write(f"module {i} of {n}\n" * (i % 7 + 1))
        order.write(f"drivers/mod{i:05d}.o\n")
with open(d + "/expected", "w") as f:
    f.write(f"{case['levels']} {case['root']}\n")
    for pos, hexproof in case["proofs"].items():
        f.write(f"drivers/mod{int(pos):05d}.merkle {hexproof}\n")
PY
  expect_rc 0 "$KMR" merkle --json --proofs v$c/modules.order
  [[ "$(json 'd["levels"]') $(json 'd["root"]')" == "$(head -1 v$c/expected)" ]] || fail "conformance set $c root"
  tail -n +2 v$c/expected | while read -r f hex; do
    [[ "$(od -An -v -tx1 v$c/$f | tr -d ' \n')" == "$hex" ]] || fail "conformance set $c: $f differs"
  done
done

# 1c. Module files whose bytes start with compressor magic are raw module
# bytes (the kernel's tool hashes them as they are): gzip, zstd, xz, lz4,
# bzip2, lzma; also a real gzip stream named .ko. Roots and proofs against
# the Python implementation, which never looks at content.
rm -rf mg && mkdir -p mg/drivers/net && : > mg/modules.order
i=0
for magic in '\x1f\x8b\x08\x00' '\x28\xb5\x2f\xfd' '\xfd7zXZ\x00' '\x04\x22\x4d\x18' 'BZh91AY&SY' '\x5d\x00\x00\x80\x00' '\x02\x21\x4c\x18'; do
  { printf "$magic"; head -c $(( i * 1000 + 77 )) /dev/urandom; } > mg/drivers/net/g$i.ko
  echo drivers/net/g$i.o >> mg/modules.order
  i=$((i + 1))
done
head -c 5000 /dev/urandom | gzip -c > mg/drivers/net/g$i.ko && echo drivers/net/g$i.o >> mg/modules.order
expect_rc 0 "$KMR" merkle --json --proofs mg/modules.order
[[ "$(json 'd["levels"]') $(json 'd["root"]')" == "$($PY root mg/modules.order)" ]] || fail "compressor-magic root"
$PY proofs mg/modules.order mgproofs
for ((k = 0; k <= i; k++)); do
  cmp -s mg/drivers/net/g$k.merkle mgproofs/drivers/net/g$k.merkle || fail "compressor-magic proof $k differs"
done

# 1d. Decompression only by name (.ko.zst, .ko.xz, .ko.gz), installed-form
# lines, proofs at <stem>.merkle; a .ko.gz that is not gzip is an error.
rm -rf nm && mkdir -p nm/kernel && : > nm/modules.order
for z in zst xz gz; do
  head -c 3000 /dev/urandom > nm/kernel/c$z.ko
  case $z in zst) zstd -q --rm nm/kernel/c$z.ko ;; xz) xz nm/kernel/c$z.ko ;; gz) gzip nm/kernel/c$z.ko ;; esac
  echo kernel/c$z.ko.$z >> nm/modules.order
done
expect_rc 0 "$KMR" merkle --json --proofs nm/modules.order
[[ "$(json 'd["levels"]') $(json 'd["root"]')" == "$($PY root nm/modules.order)" ]] || fail "named codecs root"
$PY proofs nm/modules.order nmproofs
for z in zst xz gz; do cmp -s nm/kernel/c$z.merkle nmproofs/kernel/c$z.merkle || fail "named codec proof $z"; done
head -c 100 /dev/urandom > nm/kernel/bad.ko.gz && echo kernel/bad.ko.gz >> nm/modules.order
expect_rc 2 "$KMR" merkle nm/modules.order
grep -q 'bad.ko.gz' err.txt || fail "bad .ko.gz not named"

# 1e. Appended trailers: hashed as they are, or cut off with --strip-trailers.
rm -rf tr && mkdir -p tr && cp b9/drivers/net/m*.ko tr/ && sed 's|drivers/net/||' b9/modules.order > tr/modules.order
for ((k = 0; k < 9; k++)); do cat pyproofs9/drivers/net/m$k.merkle >> tr/m$k.ko; done
expect_rc 0 "$KMR" merkle --json tr/modules.order
[[ "$(json 'd["levels"]') $(json 'd["root"]')" == "$($PY root tr/modules.order)" ]] || fail "trailers hashed as they are"
expect_rc 0 "$KMR" merkle --json --strip-trailers tr/modules.order
[[ "$(json 'd["levels"]') $(json 'd["root"]')" == "$($PY root b9/modules.order)" ]] || fail "--strip-trailers root"
[[ "$(json 'd["root"]')" == "$($PY root --strip-trailers tr/modules.order | cut -d' ' -f2)" ]] || fail "python --strip-trailers"

# 1f. An empty module file cannot be hashed (as with the kernel's tool).
rm -rf em && mkdir em && : > em/a.ko && echo a.o > em/modules.order
expect_rc 2 "$KMR" merkle em/modules.order
grep -q 'empty module file' err.txt || fail "empty module message"
expect_rc 2 "$KMR" merkle --threads x b9/modules.order
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
  cat b$n/drivers/net/m$i.ko pyproofs$n/drivers/net/m$i.merkle > $D/kernel/drivers/net/m$i.ko
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
