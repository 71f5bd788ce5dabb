"""Checks `kmr inspect` on every fixture set, then on tampered copies."""
import glob
import json
import os
import shutil
import subprocess
import sys

kmr, out, tmp = sys.argv[1:4]
manifest = json.load(open(os.path.join(out, "manifest.json")))
nix_key = open(os.path.join(out, "nixos", "cache-key.pub")).read().strip()
errors = []


def inspect(paths):
    r = subprocess.run([kmr, "inspect", "--json", "--nix-key", nix_key] + paths, capture_output=True, text=True)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    return r.returncode, j, r.stderr


def check(cond, what):
    if not cond:
        errors.append(what)
    return cond


sets = manifest["sets"]
sets = sets.values() if isinstance(sets, dict) else sets
seen = 0
for s in sets:
    name = s.get("set") or f"{s['distro']}/{s['variant']}"
    paths = [os.path.join(out, p["path"]) for p in s["packages"]]
    rc, j, err = inspect(paths)
    signed = s["variant"] == "signed"
    # The fixture's signed kernel does not embed its signing certificate, so
    # nothing it ships can verify its module signatures: exit 1, every module named.
    if not check(rc == (1 if signed else 0) and j is not None, f"{name}: exit {rc}: {err.strip()}"):
        continue
    seen += 1
    ms = j["module_signatures"]
    if signed:
        if check(ms is not None, f"{name}: module_signatures missing"):
            check(ms["signed"] == j["modules"]["count"] and ms["verified"] == 0 and not ms["ok"] and
                  ms["certificates"] == [] and len(ms["failed"]) == ms["signed"] and
                  all("none of the 0 trusted certificate(s)" in f["reason"] for f in ms["failed"]),
                  f"{name}: module_signatures {ms}")
    else:
        check(ms is None, f"{name}: module_signatures {ms} for unsigned modules")
    cr = j["modules"]["content_root"]
    root = s.get("module_root")
    if root:
        # The kernel hashes modules before appending proofs: the content root is the embedded root.
        check(cr == {"levels": root["levels"], "root": root["root"]}, f"{name}: content_root {cr} != {root}")
    fmt = {"arch": "arch", "nixos": "nixos", "suse": "suse", "proxmox": "proxmox"}[s["distro"]]
    check(j["format"] == fmt, f"{name}: format {j['format']} != {fmt}")
    check(j["kernel_release"] == manifest.get("kernel_release", j["kernel_release"]), f"{name}: kernel_release")
    layout = s.get("layout") or {}
    if layout.get("image"):
        check(j["image"] == layout["image"].split(":", 1)[1], f"{name}: image {j['image']} != {layout['image']}")
    if layout.get("vmlinux"):
        check(j["vmlinux"] == layout["vmlinux"].split(":", 1)[1], f"{name}: vmlinux {j['vmlinux']}")
    if s.get("modules"):
        check(j["modules"]["count"] == s["modules"]["count"], f"{name}: module count")
        check(j["modules"]["trailers"] == s["modules"]["trailers"], f"{name}: trailers {j['modules']['trailers']}")
    root = s.get("module_root")
    if root:
        mh = j["module_hashes"]
        if check(mh is not None, f"{name}: module_hashes missing"):
            check(mh["root"] == root["root"] and mh["levels"] == root["levels"], f"{name}: root {mh['root']} != {root}")
            check(mh["ok"] and mh["failed"] == 0 and mh["verified"] == j["modules"]["count"], f"{name}: proofs {mh}")
    check(j["image_info"]["payload_is_x86_64_elf"] is True, f"{name}: bzImage payload not an x86-64 ELF")
check(seen >= 4, f"only {seen} sets inspected")


def set_of(distro):
    for s in (manifest["sets"].values() if isinstance(manifest["sets"], dict) else manifest["sets"]):
        if s["distro"] == distro and s["variant"] == "pristine":
            return s
    raise SystemExit(f"no pristine {distro} set")


# 1. Arch: one module byte changed -> its proof fails (exit 1).
arch = set_of("arch")
pkg = os.path.join(out, arch["packages"][0]["path"])
d = os.path.join(tmp, "arch-tamper")
shutil.rmtree(d, ignore_errors=True)
os.makedirs(d + "/x")
subprocess.run(["bsdtar", "-xf", pkg, "-C", d + "/x"], check=True)
ko = sorted(glob.glob(d + "/x/usr/lib/modules/*/kernel/**/*.ko.zst", recursive=True))[0]
subprocess.run(["zstd", "-q", "-d", "--rm", ko], check=True)
raw = bytearray(open(ko[:-4], "rb").read())
raw[100] ^= 0xFF
open(ko[:-4], "wb").write(raw)
subprocess.run(["zstd", "-q", "--rm", ko[:-4]], check=True)
members = sorted(os.listdir(d + "/x"))
bad = d + "/linux-tampered.pkg.tar.zst"
subprocess.run(["bsdtar", "--zstd", "-cf", bad, "-C", d + "/x"] + members, check=True)
rc, j, err = inspect([bad])
check(rc == 1, f"arch tampered: exit {rc} (want 1) {err}")
if j:
    mh = j["module_hashes"]
    check(mh and mh["failed"] == 1 and not mh["ok"], f"arch tampered: {mh}")
    check(any(os.path.basename(ko) in p for p in mh["problems"]), f"arch tampered: problem names the module: {mh['problems']}")

# 2. Nix: NarSize changed -> signature invalid and size mismatch (exit 1).
nix = set_of("nixos")
cache = os.path.dirname(os.path.join(out, nix["packages"][0]["path"]))
d = os.path.join(tmp, "nix-tamper")
shutil.rmtree(d, ignore_errors=True)
shutil.copytree(cache, d)
ni = os.path.join(d, os.path.basename(nix["packages"][0]["path"]))
text = open(ni).read()
lines = [(f"NarSize: {int(l.split(': ')[1]) + 8}" if l.startswith("NarSize: ") else l) for l in text.split("\n")]
open(ni, "w").write("\n".join(lines))
rc, j, err = inspect([ni])
check(rc == 1, f"nix tampered: exit {rc} (want 1) {err}")
if j:
    check(any("no valid signature" in f for f in j["failures"]), f"nix tampered: signature failure {j['failures']}")
    check(any("NarSize" in f for f in j["failures"]), f"nix tampered: NarSize failure {j['failures']}")
# Wrong key -> untrusted, exit 1.
r = subprocess.run([kmr, "inspect", "--json", "--nix-key", "other-1:" + nix_key.split(":", 1)[1],
                    os.path.join(out, nix["packages"][0]["path"])], capture_output=True, text=True)
check(r.returncode == 1, f"nix untrusted key: exit {r.returncode}")

# 3. SUSE: a payload byte changed -> PAYLOADDIGEST mismatch (exit 1).
suse = set_of("suse")
rpm = bytearray(open(os.path.join(out, suse["packages"][0]["path"]), "rb").read())
rpm[-200] ^= 0x01
bad = os.path.join(tmp, "tampered.rpm")
open(bad, "wb").write(rpm)
rc, j, err = inspect([bad])
check(rc == 1, f"suse tampered: exit {rc} (want 1) {err}")
check(j is not None and any("PAYLOADDIGEST" in f for f in j.get("failures", [])), f"suse tampered: {j} {err}")

# 4. Arch detached OpenPGP signature (gpg-made key, checked by sqv/gpgv).
if shutil.which("gpg"):
    # gpg-agent's socket path must fit in sun_path (108 bytes); Bazel's
    # TEST_TMPDIR may be longer, so use a short private directory.
    import atexit, tempfile
    g = tempfile.mkdtemp(prefix="kmrgpg.", dir="/tmp")
    atexit.register(shutil.rmtree, g, True)
    os.makedirs(g + "/home", mode=0o700)
    env = dict(os.environ, GNUPGHOME=g + "/home")
    subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "kmr <k@kmr.invalid>",
                    "ed25519", "sign", "never"], env=env, check=True)
    with open(g + "/keyring.gpg", "wb") as f:
        subprocess.run(["gpg", "--batch", "--export"], env=env, check=True, stdout=f)
    signed = g + "/" + os.path.basename(arch["packages"][0]["path"])
    shutil.copy(os.path.join(out, arch["packages"][0]["path"]), signed)
    subprocess.run(["gpg", "--batch", "--quiet", "--detach-sign", "-o", signed + ".sig", signed], env=env, check=True)
    r = subprocess.run([kmr, "inspect", "--json", "--keyring", g + "/keyring.gpg", signed], capture_output=True, text=True)
    j = json.loads(r.stdout) if r.stdout else {}
    check(r.returncode == 0 and j.get("build", {}).get("signature", {}).get("valid") is True,
          f"arch signature: exit {r.returncode} {j.get('build', {}).get('signature')} {r.stderr}")
    subprocess.run(["gpg", "--batch", "--quiet", "--yes", "--detach-sign", "-o", signed + ".sig", ko[:-4] + ".zst"]
                   if os.path.exists(ko[:-4] + ".zst") else ["true"], env=env, check=True)
    r = subprocess.run([kmr, "inspect", "--json", "--keyring", g + "/keyring.gpg", signed], capture_output=True, text=True)
    check(r.returncode == 1, f"arch wrong signature: exit {r.returncode} (want 1)")
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env)

# 5. Not a package at all -> exit 2 with the file named.
junk = os.path.join(tmp, "junk.bin")
open(junk, "wb").write(b"\x00" * 4096)
rc, j, err = inspect([junk])
check(rc == 2 and "junk.bin" in err, f"junk: exit {rc} {err}")

if errors:
    print("FAIL:\n  " + "\n  ".join(errors))
    sys.exit(1)
print(f"OK: {seen} fixture sets inspected; tampered Arch module, narinfo, RPM payload detected")
