#!/usr/bin/env bash
# rebuild_overhead.sh [ROUNDS]
#
# Overhead of `kmr rebuild` (sandbox setup, environment derivation, reading
# the shipped and rebuilt packages, Merkle checks A and B, files tier) over
# the raw build of the same fixture package with the same tool and settings.
#
# Baseline: makepkg run directly on the host (as the unprivileged fixture
# user, same makepkg.conf settings as the .BUILDINFO pins) on the Arch
# pristine fixture (tests/fixtures/repos/build-repos.sh --distros arch
# --variants pristine, cached in $KMR_FIXTURES_CACHE or /var/tmp/kmr-bench-repos).
# Measured: `rebuild_tool --json` on the shipped linux-kmrfix + headers,
# total wall time. Rounds alternate raw / kmr; medians are compared.
# Prints: raw_ms kmr_ms overhead_ms ratio, and the verification part alone.
# Needs root (the fixture build creates the user kmrbuild).
set -euo pipefail
rounds=${1:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
tool=${KMR_REBUILD_TOOL:-}
for t in "$tool" "$root/rebuilder/build/rebuild_tool" "$root/bazel-bin/rebuilder/build/rebuild_tool"; do
  [[ -n $t && -x $t ]] && { tool=$t; break; }
done
[[ -x $tool ]] || { echo "rebuild_tool not found (bazel build //rebuilder/build:rebuild_tool)" >&2; exit 2; }
out=${KMR_FIXTURES_CACHE:-/var/tmp/kmr-bench-repos}
bash "$root/tests/fixtures/repos/build-repos.sh" --distros arch --variants pristine "$out" >&2
repo=$out/arch/pristine/os/x86_64
srcs=$out/arch/pristine/sources/linux-kmrfix
pkgs=("$repo"/linux-kmrfix-6.18.0-1-x86_64.pkg.tar.zst "$repo"/linux-kmrfix-headers-6.18.0-1-x86_64.pkg.tar.zst)
work=$(mktemp -d /var/tmp/kmr-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
now_ms() { date +%s%3N; }

raw_build() {
  local w=$work/raw
  rm -rf "$w"
  mkdir -p "$w/start" "$w/build" "$w/pkg" "$w/home"
  cp "$srcs"/* "$w/start/"
  cat > "$w/makepkg.conf" <<CONF
source /etc/makepkg.conf
CARCH="x86_64"
PKGEXT='.pkg.tar.zst'
COMPRESSZST=(zstd -c -T0 --ultra -20 -)
BUILDDIR=$w/build
PKGDEST=$w/pkg
SRCDEST=$w/start
PACKAGER="kmr fixtures <fixtures@kmr.invalid>"
BUILDENV=(!distcc color !ccache check !sign)
OPTIONS=(!strip docs !libtool !staticlibs emptydirs zipman purge !debug !lto)
CONF
  chown -R kmrbuild "$w"
  local t0 t1
  t0=$(now_ms)
  (cd "$w/start" && runuser -u kmrbuild -- env -i PATH=/usr/bin:/bin HOME="$w/home" LANG=C.UTF-8 \
    SOURCE_DATE_EPOCH=1767225600 makepkg --config "$w/makepkg.conf" --nodeps --force --noconfirm --nocolor \
    --noprogressbar) > "$w.log" 2>&1 || { tail "$w.log" >&2; exit 2; }
  t1=$(now_ms)
  cmp -s "$w/pkg/${pkgs[0]##*/}" "${pkgs[0]}" || echo "note: raw build differs from the shipped package" >&2
  echo $((t1 - t0))
}

kmr_build() {
  local t0 t1 json
  t0=$(now_ms)
  json=$("$tool" --json --work-dir "$work/kmr" "${pkgs[@]}") || { echo "$json" >&2; exit 2; }
  t1=$(now_ms)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["files"]=="identical" and j["module_root"]=="match", j; print(sys.argv[2], j["build_duration_ms"], j["duration_ms"])' "$json" $((t1 - t0))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
raws=() kmrs=() builds=() verifs=()
for ((i = 0; i < rounds; i++)); do
  r=$(raw_build)
  read -r k b d < <(kmr_build)
  raws+=("$r") kmrs+=("$k") builds+=("$b") verifs+=($((k - b)))
  echo "round $((i + 1)): raw ${r} ms, kmr rebuild ${k} ms (sandboxed build ${b} ms, everything else $((k - b)) ms)" >&2
done
raw=$(printf '%s\n' "${raws[@]}" | median)
kmr=$(printf '%s\n' "${kmrs[@]}" | median)
verif=$(printf '%s\n' "${verifs[@]}" | median)
python3 - "$raw" "$kmr" "$verif" <<'PY'
import sys
raw, kmr, verif = map(float, sys.argv[1:])
print(f"raw build (makepkg on the host)      {raw:9.0f} ms (median)")
print(f"kmr rebuild (sandbox + verification)  {kmr:9.0f} ms (median)")
print(f"overhead                              {kmr - raw:9.0f} ms  ratio {kmr / raw:.3f}  ({(kmr / raw - 1) * 100:+.1f}%)")
print(f"verification + setup outside the build {verif:8.0f} ms  ratio {(raw + verif) / raw:.3f}")
PY
