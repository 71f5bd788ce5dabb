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
# Measured: `rebuild_tool --json` on the shipped linux-kmrfix + headers:
# its duration_ms (shipped packages read, check A, environment, sandbox
# set-up, the sandboxed build, rebuilt packages read, check B, files tier:
# the time to the verdict) and, separately, the process wall time, which also
# includes removing the work directory after the verdict is out.
# Rounds alternate raw / kmr; medians are compared.
# Needs root (the fixture build creates the user kmrbuild).
set -euo pipefail
rounds=${1:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
tool=${KMR_REBUILD_TOOL:-}
for t in "$tool" "$root/rebuilder/rebuild/rebuild_tool" "$root/bazel-bin/rebuilder/rebuild/rebuild_tool"; do
  [[ -n $t && -x $t ]] && { tool=$t; break; }
done
[[ -x $tool ]] || { echo "rebuild_tool not found (bazel build //rebuilder/rebuild:rebuild_tool)" >&2; exit 2; }
out=${KMR_FIXTURES_CACHE:-/var/tmp/kmr-bench-repos}
# Built once (an existing OUTDIR is reused as is: the benchmark needs a
# package and its sources, not the newest fixture).
[[ -f $out/manifest.json ]] || bash "$root/tests/fixtures/repos/build-repos.sh" --distros arch --variants pristine "$out" >&2
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
raws=() kmrs=() walls=() verifs=()
for ((i = 0; i < rounds; i++)); do
  r=$(raw_build)
  read -r w b d < <(kmr_build)
  raws+=("$r") kmrs+=("$d") walls+=("$w") verifs+=($((d - b)))
  echo "round $((i + 1)): raw ${r} ms | kmr rebuild: verdict after ${d} ms (sandboxed build ${b} ms, outside it $((d - b)) ms), process wall ${w} ms" >&2
done
raw=$(printf '%s\n' "${raws[@]}" | median)
kmr=$(printf '%s\n' "${kmrs[@]}" | median)
wall=$(printf '%s\n' "${walls[@]}" | median)
verif=$(printf '%s\n' "${verifs[@]}" | median)
python3 - "$raw" "$kmr" "$wall" "$verif" "$rounds" <<'PY'
import sys
raw, kmr, wall, verif, n = map(float, sys.argv[1:])
print(f"rounds {n:.0f}, medians")
print(f"raw build (makepkg on the host)          {raw:9.0f} ms")
print(f"kmr rebuild, time to verdict             {kmr:9.0f} ms  ratio {kmr / raw:.3f} ({(kmr / raw - 1) * 100:+.1f}%)")
print(f"kmr rebuild, process wall (+ cleanup)    {wall:9.0f} ms  ratio {wall / raw:.3f} ({(wall / raw - 1) * 100:+.1f}%)")
print(f"kmr work outside the sandboxed build     {verif:9.0f} ms  ratio {(raw + verif) / raw:.4f} ({verif / raw * 100:+.2f}%)")
PY
