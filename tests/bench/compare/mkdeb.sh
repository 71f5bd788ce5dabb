#!/bin/sh
# mkdeb.sh ORIG.deb OUT.deb : a copy of a kernel .deb with a few modules
# changed (3 with a byte flipped inside .modinfo, 1 with a byte flipped in
# its PKCS#7 signature), DEBIAN/md5sums updated, rebuilt with dpkg-deb -b.
set -eu
deb=$1; out=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/kmr-mkdeb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
dpkg-deb -R "$deb" "$work/root"
mods=$(cd "$work/root" && find lib/modules -name '*.ko' | LC_ALL=C sort | awk 'NR%1000==17' | head -3)
sig=$(cd "$work/root" && find lib/modules -name '*.ko' | LC_ALL=C sort | awk 'NR==2500')
python3 - "$work/root" $mods -- $sig <<'PY'
import hashlib, os, sys
root = sys.argv[1]
args = sys.argv[2:]
split = args.index("--")
content, sigonly = args[:split], args[split + 1:]
for rel in content:
    p = os.path.join(root, rel); b = bytearray(open(p, "rb").read())
    i = b.find(b"license=")
    b[i + 8] ^= 0x20
    open(p, "wb").write(b)
for rel in sigonly:
    p = os.path.join(root, rel); b = bytearray(open(p, "rb").read())
    b[-100] ^= 0xff
    open(p, "wb").write(b)
md5 = os.path.join(root, "DEBIAN", "md5sums")
if os.path.exists(md5):
    changed = set(content + sigonly)
    lines = []
    for line in open(md5):
        h, name = line.rstrip("\n").split("  ", 1)
        if name in changed:
            h = hashlib.md5(open(os.path.join(root, name), "rb").read()).hexdigest()
        lines.append(h + "  " + name + "\n")
    open(md5, "w").writelines(lines)
print("changed:", " ".join(content), "signature-only:", " ".join(sigonly))
PY
dpkg-deb -Zxz -b "$work/root" "$out" > /dev/null
