#!/usr/bin/env python3
"""Independent check (Python, not kmr) of an attestation kmrd served.

    check_attestation.py ENVELOPE ARTIFACT_JSON [PACKAGE]

ENVELOPE is the DSSE envelope downloaded from the web UI, ARTIFACT_JSON the
artifact document from GET /api/v1/artifacts/sha256/{hex}. Checks that the
in-toto statement's predicate carries the module content root (verdict,
shipped and rebuilt roots, levels) equal to what the API reports, and that
verificationResult follows the reproducibility rule, written out again here:
PASSED iff files is identical, content-identical or
identical-modulo-signatures, module_root is match or absent (or missing), and
module_content_root is match or absent (or null).

With PACKAGE (the shipped package file, an Arch .pkg.tar.*), the shipped
content root is also recomputed from the package itself with
tests/fixtures/merkle/modules_merkle_tree.py (hashlib; modules decompressed,
signature or proof trailers cut) over its modules.order.

Prints one line per check; exit 0 when all hold, 1 otherwise.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

GOOD_FILES = {"identical", "content-identical", "identical-modulo-signatures"}
GOOD_ROOTS = {"match", "absent", None}
CONTENT_ROOTS = {"match", "mismatch", "absent", None}
MERKLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "merkle",
                      "modules_merkle_tree.py")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def statement_of(envelope_path):
    env = json.load(open(envelope_path, encoding="utf-8"))
    if env.get("payloadType") != "application/vnd.in-toto+json":
        fail("payloadType is %r" % env.get("payloadType"))
    return json.loads(base64.b64decode(env["payload"]))


def check_kernel(stmt, artifact):
    pred = stmt["predicate"]
    kernel = pred["kernel"]
    for key in ("module_content_root", "shipped_content_root", "rebuilt_content_root", "content_root_levels"):
        if key not in kernel:
            fail("predicate.kernel has no %s" % key)
    if kernel["module_content_root"] not in CONTENT_ROOTS:
        fail("module_content_root %r is not a content-root verdict" % kernel["module_content_root"])
    cr = artifact.get("content_root") or {}
    want = {"module_content_root": cr.get("verdict"), "shipped_content_root": cr.get("shipped"),
            "rebuilt_content_root": cr.get("rebuilt"), "content_root_levels": cr.get("levels")}
    for key, value in want.items():
        if kernel[key] != value:
            fail("predicate.kernel.%s is %r, the artifact API says %r" % (key, kernel[key], value))
    passed = (kernel["files"] in GOOD_FILES and kernel.get("module_root") in GOOD_ROOTS
              and kernel["module_content_root"] in GOOD_ROOTS)
    expected = "PASSED" if passed else "FAILED"
    if pred["verificationResult"] != expected:
        fail("verificationResult %s, the rule says %s (files %s, module_root %s, module_content_root %s)" % (
            pred["verificationResult"], expected, kernel["files"], kernel.get("module_root"),
            kernel["module_content_root"]))
    print("OK: statement carries module_content_root=%s shipped=%s rebuilt=%s levels=%s; %s by the rule" % (
        kernel["module_content_root"], kernel["shipped_content_root"], kernel["rebuilt_content_root"],
        kernel["content_root_levels"], expected))
    return kernel


def installed_order(order_path):
    """modules.order names foo.ko; a package may install foo.ko.zst/.xz/.gz."""
    base = os.path.dirname(order_path)
    lines = []
    for line in open(order_path, encoding="utf-8"):
        line = line.strip()
        if not line:
            continue
        if not os.path.exists(os.path.join(base, line)):
            line = next((line + s for s in (".zst", ".xz", ".gz") if os.path.exists(os.path.join(base, line + s))), line)
        lines.append(line)
    out = os.path.join(base, "modules.order.installed")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return out


def check_package(kernel, package):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "-xf", package, "-C", tmp], check=True)
        orders = [os.path.join(d, "modules.order") for d, _, files in os.walk(tmp) if "modules.order" in files]
        if len(orders) != 1:
            fail("%s: expected one modules.order, found %d" % (package, len(orders)))
        got = subprocess.run([sys.executable, MERKLE, "root", "--strip-trailers", installed_order(orders[0])],
                             check=True, capture_output=True, text=True).stdout.split()
    levels, root = int(got[0]), got[1]
    if (levels, root) != (kernel["content_root_levels"], kernel["shipped_content_root"]):
        fail("shipped content root recomputed from the package: %d %s, the statement says %s %s" % (
            levels, root, kernel["content_root_levels"], kernel["shipped_content_root"]))
    print("OK: shipped content root %s (%d levels) recomputed from %s" % (root, levels, os.path.basename(package)))


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    kernel = check_kernel(statement_of(sys.argv[1]), json.load(open(sys.argv[2], encoding="utf-8")))
    if len(sys.argv) == 4:
        check_package(kernel, sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
