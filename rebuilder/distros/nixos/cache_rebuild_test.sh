#!/bin/bash
# kmr rebuild --backend nixos with a binary cache as the substituter of the
# build's inputs: the fixture NixOS kernel (tests/fixtures/repos, a signed
# cache made by nix copy) served over HTTPS (tests/lib/https_mirror.sh) in
# cache.nixos.org's layout.
#  1. The rebuild reaches the manifest's verdict (files identical); the .drv,
#     the builder and the source tarball came from the cache (each narinfo
#     and NAR in the mirror's log, listed in environment.fields.substituted,
#     equal to the derivation closure nix-store reports), the outputs being
#     rebuilt were never asked for, and the host store was not used (a `nix`
#     on PATH that fails and logs: the host-store path runs `nix copy`).
#  2. One character of a narinfo's Sig changed: error (exit 2), nothing built.
#  3. A NAR replaced (FileHash/FileSize rewritten, they are unsigned): error.
#  4. The builder's narinfo absent: environment-unavailable naming its store
#     path and the URL tried.
#  5. KMR_LIVE=1: the real cache.nixos.org (a channel's hello narinfo; the
#     cache serves no .drv, so environment-unavailable naming the .drv and
#     the URL); without the network this part is "not run" (require.sh),
#     never a pass.
set -uo pipefail
R="${TEST_SRCDIR:-$PWD/..}/kmr"
KMR="$R/rebuilder/cli/kmr"
source "$R/tests/lib/require.sh"
source "$R/tests/lib/https_mirror.sh"
source "$R/rebuilder/distros/nixos/nix_fixture.sh"
T=${TEST_TMPDIR:-$(mktemp -d)}
kmr_nix_fixture nix-store nix curl python3 openssl
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
mkdir -p "$T/www" "$T/tls" "$T/stub" "$T/pkgs"
cp -r "$SET/cache" "$T/www/good"
kmr_https_mirror "$T/www" "$T/tls" || { echo "FAIL: the HTTPS mirror did not start"; exit 1; }
trap 'kill "$KMR_MIRROR_PID" 2>/dev/null' EXIT
export SSL_CERT_FILE=$KMR_MIRROR_CA KMR_REBUILD_DIR=$T/work
check "three output narinfos in the manifest" '((${#PKGS[@]} == 3))'
# A `nix` that fails: the host-store path (nix copy from /nix/store) cannot run.
printf '#!/bin/sh\necho "nix $*" >> %s/stub.log\nexit 1\n' "$T" > "$T/stub/nix"
chmod +x "$T/stub/nix"

rebuild() { # NAME CACHE-DIR: kmr rebuild with the cache at the mirror
  local name=$1 cache=$2
  PATH=$T/stub:$PATH "$KMR" rebuild --json --backend nixos --repository "$KMR_MIRROR_URL/$cache" \
    --repository-key "$KEY" "${PKGS[@]}" > "$T/$name.json" 2> "$T/$name.err"
  echo $? > "$T/$name.rc"
}

# 1. From the cache.
: > "$T/tls/mirror.log"
start=$(date +%s)
rebuild good good
echo "rebuild from the cache: $(($(date +%s) - start)) s"
nix-store --query --requisites "$DRV" | xargs -n1 basename | sort > "$T/closure.want"
python3 - "$T/good.json" "$T/tls/mirror.log" "$T/closure.want" "${PKGS[@]}" <<'PY' || fail=1
import json, os, re, sys
j = json.load(open(sys.argv[1])); log = open(sys.argv[2]).read().split("\n"); want = open(sys.argv[3]).read().split()
pkgs = sys.argv[4:]
assert j["status"] == "verdict", (j["status"], j.get("reason"), j.get("missing"))
assert j["files"] == "identical", (j["files"], j.get("differing"))
assert j["exit_code"] == 0, j["exit_code"]
f = j["environment"]["fields"]
got = sorted(f["substituted"].split())
assert got == want, (got, want)
assert f["substituter"].endswith("/good"), f["substituter"]
for base in got:
    h = base[:32]
    assert f"GET /good/{h}.narinfo" in log, (base, "narinfo not fetched")
    nar = re.search(r"^URL: (\S+)", open(os.path.join(os.path.dirname(pkgs[0]), h + ".narinfo")).read(), re.M).group(1)
    assert f"GET /good/{nar}" in log, (base, "NAR not fetched")
for p in pkgs:
    h = os.path.basename(p)[:32]
    assert not any(h in l for l in log), ("an output being rebuilt was asked of the cache", p)
print("ok: verdict identical; %d input paths from the cache (%s bytes of NAR): %s" % (len(got), f["substituted_nar_bytes"], " ".join(got)))
PY
check "the host store was not used (the failing nix was never run)" '[[ ! -s $T/stub.log ]]'

# 2. A forged signature on the derivation's narinfo.
cp -r "$SET/cache" "$T/www/badsig"
h=$(basename "$DRV" | cut -c1-32)
python3 - "$T/www/badsig/$h.narinfo" <<'PY'
import re, sys
p = sys.argv[1]; t = open(p).read()
m = re.search(r"^Sig: [^:]+:(.)", t, re.M)
k = m.start(1)
open(p, "w").write(t[:k] + ("B" if t[k] == "A" else "A") + t[k + 1:])
PY
rebuild badsig badsig
check "forged Sig: exit 2" '[[ $(cat "$T/badsig.rc") == 2 ]]'
check "forged Sig: status error naming the signature" \
  'python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j[\"status\"]==\"error\" and \"no signature verifies with a trusted key\" in j[\"reason\"], j; assert not j[\"rebuilt\"]" "$T/badsig.json"'

# 3. The source tarball's NAR replaced; FileHash and FileSize rewritten to match.
cp -r "$SET/cache" "$T/www/badnar"
tb=$(nix-store --query --references "$DRV" | grep -- '-kmr-fixture-kernel-.*\.tar\.gz$')
th=$(basename "$tb" | cut -c1-32)
url=$(sed -n 's/^URL: //p' "$T/www/badnar/$th.narinfo")
printf 'not the tarball' > "$T/other" && nix-store --dump "$T/other" | xz > "$T/www/badnar/$url"
sed -i -e "s|^FileHash: .*|FileHash: sha256:$(nix-hash --type sha256 --flat --base32 "$T/www/badnar/$url")|" \
  -e "s|^FileSize: .*|FileSize: $(stat -c %s "$T/www/badnar/$url")|" "$T/www/badnar/$th.narinfo"
rebuild badnar badnar
check "swapped NAR: exit 2, NarSize/NarHash mismatch named" \
  'python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j[\"exit_code\"]==2 and j[\"status\"]==\"error\" and (\"NarHash mismatch\" in j[\"reason\"] or \"NarSize mismatch\" in j[\"reason\"]), j" "$T/badnar.json"'

# 4. The builder's narinfo missing.
cp -r "$SET/cache" "$T/www/missing"
bl=$(nix-store --query --references "$DRV" | grep -- '-builder\.sh$')
rm "$T/www/missing/$(basename "$bl" | cut -c1-32).narinfo"
rebuild missing missing
python3 - "$T/missing.json" "$bl" "$KMR_MIRROR_URL/missing/$(basename "$bl" | cut -c1-32).narinfo" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1])); path, url = sys.argv[2:]
assert j["status"] == "environment-unavailable", (j["status"], j.get("reason"))
assert any(m.startswith(path + ": " + url + ": ") for m in j["missing"]), j["missing"]
print("ok: missing input named with the URL tried:", [m for m in j["missing"] if m.startswith(path)][0])
PY

# 5. The real cache.nixos.org.
if [[ ${KMR_LIVE:-0} == 1 ]]; then
  CH=https://channels.nixos.org/nixos-25.05
  if ! curl -fsSL --max-time 60 -o "$T/store-paths.xz" "$CH/store-paths.xz" 2> "$T/live.err"; then
    ((fail == 0)) || exit 1   # the local parts' failures are not hidden by the skip
    kmr_skip "not run: KMR_LIVE=1 but $CH is unreachable ($(tail -1 "$T/live.err"))"
  fi
  hello=$(xz -dc "$T/store-paths.xz" | grep -E '^/nix/store/[0-9a-z]{32}-hello-[0-9.]+$' | head -1)
  [[ -n $hello ]] || { echo "FAIL: no hello in the channel's store-paths"; exit 1; }
  hh=$(basename "$hello" | cut -c1-32)
  curl -fsSL --max-time 60 -o "$T/pkgs/$hh.narinfo" "https://cache.nixos.org/$hh.narinfo" || { echo "FAIL: no narinfo for $hello"; exit 1; }
  unset SSL_CERT_FILE
  "$KMR" rebuild --json --backend nixos --repository https://cache.nixos.org \
    --repository-key cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= "$T/pkgs/$hh.narinfo" > "$T/live.json" 2> "$T/live.err"
  python3 - "$T/live.json" <<'PY' || fail=1
import json, sys
j = json.load(open(sys.argv[1]))
assert j["status"] == "environment-unavailable", (j["status"], j.get("reason"))
m = [x for x in j["missing"] if ".drv: https://cache.nixos.org/" in x and "does not serve the derivation" in x]
assert m, j["missing"]
print("ok: live cache.nixos.org:", m[0][:200])
PY
fi
exit $fail
