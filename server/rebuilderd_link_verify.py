#!/usr/bin/env python3
"""Checks an in-toto v0.9 link as rebuilderd's consumers do, independently of kmr.

usage: rebuilderd_link_verify.py LINK.json PUBLIC_KEYS.json [--require-sha512] [--file NAME=PATH]...
LINK.json: {"signatures":[{"keyid","sig"}],"signed":{...}}; PUBLIC_KEYS.json: {"current":[PEM]}.
Recomputes securesystemslib's canonical JSON of "signed", the key id of the published
key and verifies the Ed25519 signature with the cryptography module. --require-sha512:
every material and product must carry a sha512 beside its sha256. --file NAME=PATH:
NAME's sha256 and sha512 (materials and products) must be those of the bytes at PATH,
hashed here with hashlib. Exit 0: valid.
"""
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def canonical(o):
    # securesystemslib.formats.encode_canonical
    if o is None:
        return "null"
    if isinstance(o, bool):
        return "true" if o else "false"
    if isinstance(o, int):
        return str(o)
    if isinstance(o, str):
        return '"' + o.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(o, (list, tuple)):
        return "[" + ",".join(canonical(x) for x in o) + "]"
    if isinstance(o, dict):
        return "{" + ",".join(canonical(k) + ":" + canonical(o[k]) for k in sorted(o)) + "}"
    raise TypeError("not canonicalizable: %r" % type(o))


def fail(msg):
    print("INVALID: " + msg)
    sys.exit(1)


def file_digests(path):
    data = open(path, "rb").read()
    return {"sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest()}


def check_digests(signed, require_sha512, files):
    lengths = {"sha256": 64, "sha512": 128}
    for part in ("materials", "products"):
        for name, digests in signed[part].items():
            if "sha256" not in digests:
                fail("%s %s lacks sha256" % (part, name))
            if require_sha512 and "sha512" not in digests:
                fail("%s %s lacks sha512" % (part, name))
            for alg, h in digests.items():
                if alg not in lengths:
                    fail("unknown digest " + alg)
                if not isinstance(h, str) or len(h) != lengths[alg] or h != h.lower():
                    fail("%s %s: %s is not %d lowercase hex digits" % (part, name, alg, lengths[alg]))
                int(h, 16)
                if name in files and files[name][alg] != h:
                    fail("%s %s: %s %s, the file has %s" % (part, name, alg, h, files[name][alg]))
    for name in files:
        if name not in signed["products"]:
            fail("no product " + name)


def main():
    args = sys.argv[1:]
    require_sha512 = "--require-sha512" in args
    files = {}
    rest = []
    i = 0
    while i < len(args):
        if args[i] == "--require-sha512":
            pass
        elif args[i] == "--file" and i + 1 < len(args):
            name, _, path = args[i + 1].partition("=")
            files[name] = file_digests(path)
            i += 1
        else:
            rest.append(args[i])
        i += 1
    if len(rest) != 2:
        fail("usage: rebuilderd_link_verify.py LINK.json PUBLIC_KEYS.json [--require-sha512] [--file NAME=PATH]...")
    link = json.load(open(rest[0], encoding="utf-8"))
    keys = json.load(open(rest[1], encoding="utf-8"))
    pems = keys.get("current")
    if not isinstance(pems, list) or len(pems) != 1:
        fail("public-keys must list one current key")
    pem = pems[0]
    if "\r\n" not in pem or "\n" in pem.replace("\r\n", ""):
        fail("PEM lines must end in \\r\\n")
    pub = serialization.load_pem_public_key(pem.encode())
    if not isinstance(pub, Ed25519PublicKey):
        fail("not an Ed25519 key")
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_obj = {"keyid_hash_algorithms": ["sha256", "sha512"], "keytype": "ed25519",
               "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
    keyid = hashlib.sha256(canonical(key_obj).encode()).hexdigest()

    signed = link.get("signed")
    if set(link) != {"signatures", "signed"}:
        fail("top-level keys %s" % sorted(link))
    want = {"_type", "name", "materials", "products", "environment", "byproducts", "command"}
    if not isinstance(signed, dict) or set(signed) != want:
        fail("signed keys %s" % sorted(signed or {}))
    if signed["_type"] != "link" or signed["environment"] is not None or signed["byproducts"] != {} \
            or signed["command"] != []:
        fail("fixed link fields")
    if not signed["name"].startswith("rebuild ") or signed["name"][8:] not in signed["products"]:
        fail("name must be 'rebuild <product>'")
    check_digests(signed, require_sha512, files)
    sigs = link["signatures"]
    if len(sigs) != 1 or set(sigs[0]) != {"keyid", "sig"}:
        fail("signatures must be [{keyid, sig}]")
    if sigs[0]["keyid"] != keyid:
        fail("keyid %s, expected %s" % (sigs[0]["keyid"], keyid))
    try:
        pub.verify(bytes.fromhex(sigs[0]["sig"]), canonical(signed).encode("utf-8"))
    except Exception as e:  # cryptography raises InvalidSignature
        fail("signature: %r" % e)
    print("OK keyid=%s products=%s" % (keyid, ",".join(sorted(signed["products"]))))


if __name__ == "__main__":
    main()
