#!/usr/bin/env python3
"""tamper_package.py PACKAGE OUT MODULE_SUFFIX

Writes OUT: a copy of PACKAGE (Arch .pkg.tar.zst, .deb, .rpm, or a Nix
.narinfo with its NAR) in which the one module whose member path ends with
MODULE_SUFFIX has one byte flipped inside the module itself (decompressed,
changed at offset 100, recompressed), everything else kept. Prints the
member path of the changed module. Only external tools and the Python
standard library are used, so the test does not check kmr with kmr.
"""
import bz2
import io
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile


def flip_module(name, data):
    def run(cmd, inp):
        return subprocess.run(cmd, input=inp, capture_output=True, check=True).stdout
    if name.endswith(".zst"):
        raw = bytearray(run(["zstd", "-dc"], data))
    elif name.endswith(".xz"):
        raw = bytearray(lzma.decompress(data))
    else:
        raw = bytearray(data)
    raw[100] ^= 0xFF
    raw = bytes(raw)
    if name.endswith(".zst"):
        return run(["zstd", "-q", "-c", "-19"], raw)
    if name.endswith(".xz"):
        return lzma.compress(raw, check=lzma.CHECK_CRC32)
    return raw


def tamper_tar(data, suffix, prefix=""):
    src = tarfile.open(fileobj=io.BytesIO(data))
    out = io.BytesIO()
    dst = tarfile.open(fileobj=out, mode="w", format=src.format)
    hit = None
    for m in src.getmembers():
        f = src.extractfile(m) if m.isfile() else None
        body = f.read() if f else None
        if m.isfile() and m.name.lstrip("./").endswith(suffix) and hit is None:
            body = flip_module(m.name, body)
            m.size = len(body)
            hit = prefix + m.name.lstrip("./").lstrip("/")
        dst.addfile(m, io.BytesIO(body) if body is not None else None)
    dst.close()
    if hit is None:
        sys.exit(f"no member ends with {suffix}")
    return out.getvalue(), hit


def tamper_pkg_tar(pkg, out, suffix):
    raw = subprocess.run(["zstd", "-dc", pkg], capture_output=True, check=True).stdout
    new, hit = tamper_tar(raw, suffix)
    with open(out, "wb") as f:
        f.write(subprocess.run(["zstd", "-q", "-c", "-19"], input=new, capture_output=True, check=True).stdout)
    return hit


def tamper_deb(pkg, out, suffix):
    data = open(pkg, "rb").read()
    assert data[:8] == b"!<arch>\n"
    pos, parts = 8, []
    while pos < len(data):
        hdr = data[pos:pos + 60]
        name, size = hdr[:16].decode().strip(), int(hdr[48:58])
        parts.append((hdr, name, data[pos + 60:pos + 60 + size]))
        pos += 60 + size + (size & 1)
    res, hit = bytearray(b"!<arch>\n"), None
    for hdr, name, body in parts:
        if name.startswith("data.tar"):
            inner = lzma.decompress(body) if name.endswith(".xz") else body
            new, hit = tamper_tar(inner, suffix)
            body = lzma.compress(new) if name.endswith(".xz") else new
            hdr = hdr[:48] + str(len(body)).ljust(10).encode() + hdr[58:]
        res += hdr + body + (b"\n" if len(body) & 1 else b"")
    open(out, "wb").write(res)
    return hit


def header_len(data, off):
    assert data[off:off + 3] == b"\x8e\xad\xe8"
    nindex, hsize = struct.unpack(">II", data[off + 8:off + 16])
    return 16 + 16 * nindex + hsize


def tamper_rpm(pkg, out, suffix):
    data = open(pkg, "rb").read()
    off = 96
    off += header_len(data, off)
    off = (off + 7) & ~7
    off += header_len(data, off)
    cpio = bz2.decompress(data[off:])
    res, pos, hit = bytearray(), 0, None
    while True:
        h = cpio[pos:pos + 110]
        assert h[:6] in (b"070701", b"070702"), h[:6]
        fields = [int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        npos = pos + 110
        name = cpio[npos:npos + namesize - 1].decode()
        dpos = (npos + namesize + 3) & ~3
        body = cpio[dpos:dpos + filesize]
        nxt = (dpos + filesize + 3) & ~3
        if name.lstrip("./").endswith(suffix) and hit is None:
            body = flip_module(name, body)
            fields[6] = len(body)
            hit = name.lstrip("./").lstrip("/")
        hdr = h[:6] + b"".join(b"%08X" % v for v in fields)
        res += hdr + cpio[npos:dpos] + body + b"\0" * ((4 - len(body) % 4) % 4)
        pos = nxt
        if name == "TRAILER!!!":
            break
    open(out, "wb").write(data[:off] + bz2.compress(bytes(res), 9))
    return hit


def tamper_narinfo(narinfo, out, suffix):
    info = dict(l.split(": ", 1) for l in open(narinfo).read().splitlines() if ": " in l)
    nar = os.path.join(os.path.dirname(narinfo), info["URL"])
    tmp = tempfile.mkdtemp()
    try:
        root = os.path.join(tmp, "root")
        raw = lzma.decompress(open(nar, "rb").read()) if nar.endswith(".xz") else open(nar, "rb").read()
        subprocess.run(["nix-store", "--restore", root], input=raw, check=True)
        hit = None
        for d, _, files in sorted(os.walk(root)):
            for f in sorted(files):
                p = os.path.join(d, f)
                rel = os.path.relpath(p, root)
                if rel.endswith(suffix) and hit is None:
                    os.chmod(p, 0o644)
                    body = flip_module(p, open(p, "rb").read())
                    open(p, "wb").write(body)
                    os.chmod(p, 0o444)
                    hit = rel
        if hit is None:
            sys.exit(f"no member ends with {suffix}")
        new = subprocess.run(["nix-store", "--dump", root], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["chmod", "-R", "u+w", tmp])
        shutil.rmtree(tmp)
    outdir = os.path.dirname(os.path.abspath(out))
    os.makedirs(os.path.join(outdir, "nar"), exist_ok=True)
    url = "nar/tampered-" + os.path.basename(out) + ".nar.xz"
    path = os.path.join(outdir, url)
    open(path, "wb").write(lzma.compress(new))
    # A narinfo rewritten to describe the tampered NAR (as a mirror that
    # regenerates its metadata would): NarHash/NarSize/FileHash/FileSize by
    # nix-hash, no Sig (no trusted key signs it). kmr checks the NAR against
    # these before comparing, so the module is what it finds.
    def nix_sha256(p):
        h = subprocess.run(["nix-hash", "--type", "sha256", "--flat", "--base32", p],
                           capture_output=True, check=True, text=True).stdout.strip()
        return "sha256:" + h
    raw_path = path + ".raw"
    open(raw_path, "wb").write(new)
    fields = {"URL": url, "Compression": "xz", "FileHash": nix_sha256(path),
              "FileSize": str(os.path.getsize(path)), "NarHash": nix_sha256(raw_path),
              "NarSize": str(len(new))}
    os.unlink(raw_path)
    lines = []
    for l in open(narinfo).read().splitlines():
        key = l.split(": ", 1)[0]
        if key == "Sig":
            continue
        if key in fields:
            l = key + ": " + fields.pop(key)
        lines.append(l)
    lines += [k + ": " + v for k, v in fields.items()]
    open(out, "w").write("\n".join(lines) + "\n")
    return hit


def main():
    pkg, out, suffix = sys.argv[1:4]
    if ".pkg.tar" in pkg:
        hit = tamper_pkg_tar(pkg, out, suffix)
    elif pkg.endswith(".deb"):
        hit = tamper_deb(pkg, out, suffix)
    elif pkg.endswith(".rpm"):
        hit = tamper_rpm(pkg, out, suffix)
    elif pkg.endswith(".narinfo"):
        hit = tamper_narinfo(pkg, out, suffix)
    else:
        sys.exit("unknown package type: " + pkg)
    print(hit)


if __name__ == "__main__":
    main()
