#!/usr/bin/env python3
"""The member hashes of a package, computed without kmr, for the member index test.

usage: members_expected.py PACKAGE WORKDIR  ->  JSON [{"key","path","kind"}] on stdout

The package is unpacked by the distribution's own tools (dpkg-deb -x, bsdtar -xf, rpm2cpio |
bsdtar, nix-store --restore from `xz -dc`/`zstd -dc` of the NAR), every regular file hashed
with hashlib ("file"); kernel modules and images are also decompressed with zstd/xz/gzip -dc
("decompressed"), a module's appended signature or Merkle trailer is cut by the layout the
kernel's scripts/sign-file writes (magic, struct module_signature, sig_len), and a signed PE
image is stripped with `sbattach --remove` ("stripped"). A narinfo's NarHash is recomputed with
`nix-hash --type sha256 --base32` and must equal the narinfo's ("nar").
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

MAGIC = b"~Module signature appended~\n"
SUFFIX_TOOL = {".zst": ["zstd", "-dc"], ".xz": ["xz", "-dc"], ".gz": ["gzip", "-dc"]}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def is_module(name):
    return name.endswith((".ko", ".ko.zst", ".ko.xz", ".ko.gz"))


def is_image(name):
    return name.startswith(("vmlinuz", "vmlinux", "bzImage", "zImage", "Image"))


def strip_module(data):
    if not data.endswith(MAGIC) or len(data) < len(MAGIC) + 12:
        return None
    sig_len = struct.unpack(">I", data[-len(MAGIC) - 4:-len(MAGIC)])[0]
    end = len(data) - len(MAGIC) - 12 - sig_len
    return data[:end] if end > 0 else None


def strip_image(path, data, work):
    if data[:2] != b"MZ":
        return None
    src, dst = os.path.join(work, "img"), os.path.join(work, "img.unsigned")
    with open(src, "wb") as f:
        f.write(data)
    r = subprocess.run(["sbattach", "--remove", src], capture_output=True)
    if r.returncode != 0:
        return None  # not signed
    with open(src, "rb") as f:
        out = f.read()
    for p in (src, dst):
        if os.path.exists(p):
            os.unlink(p)
    return out


def hashes_of(root, prefix, work):
    out = []
    for dirpath, _, files in os.walk(root):
        for fn in files:
            full = os.path.join(dirpath, fn)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            rel = os.path.relpath(full, root)
            path = prefix + "/" + rel if prefix else rel
            data = open(full, "rb").read()
            out.append({"key": sha(data), "path": path, "kind": "file"})
            if not (is_module(fn) or is_image(fn)):
                continue
            content = data
            for suffix, tool in SUFFIX_TOOL.items():
                if fn.endswith(suffix):
                    content = subprocess.run(tool + [full], capture_output=True, check=True).stdout
                    out.append({"key": sha(content), "path": path, "kind": "decompressed"})
            stripped = strip_module(content) if is_module(fn) else strip_image(path, content, work)
            if stripped is not None:
                out.append({"key": sha(stripped), "path": path, "kind": "stripped"})
    return out


def narinfo_fields(path):
    fields = {}
    for line in open(path, encoding="utf-8"):
        k, _, v = line.rstrip("\n").partition(": ")
        fields[k] = v
    return fields


def main():
    pkg, work = sys.argv[1], sys.argv[2]
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    prefix = ""
    extra = []
    if pkg.endswith(".deb"):
        subprocess.run(["dpkg-deb", "-x", pkg, root], check=True)
    elif pkg.endswith(".rpm"):
        os.makedirs(root)
        cpio = subprocess.run(["rpm2cpio", pkg], capture_output=True, check=True).stdout
        subprocess.run(["bsdtar", "-xf", "-", "-C", root], input=cpio, check=True)
    elif pkg.endswith(".narinfo"):
        f = narinfo_fields(pkg)
        nar = os.path.join(os.path.dirname(pkg), f["URL"])
        tool = {"xz": ["xz", "-dc"], "zstd": ["zstd", "-dc"], "none": ["cat"]}[f.get("Compression", "none")]
        plain = subprocess.run(tool + [nar], capture_output=True, check=True).stdout
        subprocess.run(["nix-store", "--restore", root], input=plain, check=True)
        nar_hash = subprocess.run(["nix-hash", "--type", "sha256", "--base32", root], capture_output=True,
                                  check=True, text=True).stdout.strip()
        if "sha256:" + nar_hash != f["NarHash"]:
            sys.exit("nix-hash %s != narinfo NarHash %s" % (nar_hash, f["NarHash"]))
        hexhash = subprocess.run(["nix-hash", "--type", "sha256", "--to-base16", nar_hash], capture_output=True,
                                 check=True, text=True).stdout.strip()
        prefix = f["StorePath"]
        extra.append({"key": hexhash, "path": prefix, "kind": "nar"})
        if os.path.isfile(root):  # a NAR whose root is one file
            data = open(root, "rb").read()
            extra.append({"key": sha(data), "path": prefix, "kind": "file"})
            json.dump(extra, sys.stdout)
            return
    else:
        os.makedirs(root)
        subprocess.run(["bsdtar", "-xf", pkg, "-C", root], check=True)
    json.dump(extra + hashes_of(root, prefix, work), sys.stdout)


if __name__ == "__main__":
    main()
