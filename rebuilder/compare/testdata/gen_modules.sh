#!/bin/sh
# gen_modules.sh OUT N NDIFF [KVER_B]
# Two trees OUT/a OUT/b of N gcc-compiled relocatable ".ko" objects under
# lib/modules/<KVER>/kernel/, the first NDIFF differing (a string and the
# code), plus OUT/a.tar OUT/b.tar. KVER_B renames the release on side b.
set -eu
out=$1; n=$2; nd=$3; kb=${4:-6.1.0}
rm -rf "$out"; mkdir -p "$out/src" "$out/a/lib/modules/6.1.0/kernel" "$out/b/lib/modules/$kb/kernel"
i=0
while [ $i -lt $n ]; do
  m=$(printf m%03d $i)
  cat > "$out/src/$m.c" <<C
static const char version[] __attribute__((section(".modinfo"),used)) = "version=1.$i";
static const char lic[] __attribute__((section(".modinfo"),used)) = "license=GPL";
int ${m}_data[16] = {$i, 2, 3};
const char *${m}_name = "module $m VERSION_A";
int ${m}_init(int x) { int s = 0; for (int k = 0; k < x; k++) s += ${m}_data[k % 16] * k; return s + $i; }
C
  gcc -O2 -g -c "$out/src/$m.c" -o "$out/a/lib/modules/6.1.0/kernel/$m.ko" &
  if [ $i -lt $nd ]; then
    sed -e 's/VERSION_A/VERSION_B/' -e "s/s + $i;/s + $i + 7;/" "$out/src/$m.c" > "$out/src/${m}b.c"
    gcc -O2 -g -c "$out/src/${m}b.c" -o "$out/b/lib/modules/$kb/kernel/$m.ko" &
  fi
  wait
  [ $i -lt $nd ] || cp "$out/a/lib/modules/6.1.0/kernel/$m.ko" "$out/b/lib/modules/$kb/kernel/$m.ko"
  i=$((i+1))
done
(cd "$out/a" && tar --sort=name --mtime=@0 --owner=0 --group=0 -cf ../a.tar lib)
(cd "$out/b" && tar --sort=name --mtime=@0 --owner=0 --group=0 -cf ../b.tar lib)
