#!/usr/bin/env python3
"""The include graph of kmr's C++ packages, drawn and checked.

Every package (a folder with a BUILD.bazel holding C++ files) has a layer; an
`#include "pkg/..."` of another package is an arrow, and every arrow must point
to a lower layer. Tests and fuzz targets are drawn apart: they may use test
helpers (`tests/lib`) besides the package they test.

    include_graph.py [--root DIR] [--dot FILE] [--svg FILE] [--check-dot FILE]

Exit 0 when every arrow points down, 1 with each upward or sideways arrow
named (file and line) otherwise, 2 on a usage error. `--check-dot FILE` also
fails when FILE (the committed drawing's source) is not what the tree gives.
"""
import argparse
import os
import re
import subprocess
import sys

# Top to bottom. Packages on one line share a layer and may not use each other.
LAYERS = [
    ["tests/e2e", "tests/bench/attest", "tests/bench/build", "tests/bench/pkg", "tests/conformance",
     "tests/realdeb", "tests/rebuilderd", "tests/fixtures/kernel", "tests/fixtures/merkle",
     "tests/fixtures/realkernel", "tests/fixtures/repos"],
    ["server"],
    ["attest"],
    ["rebuilder/cli"],
    ["rebuilder/compare", "rebuilder/distros"],
    ["rebuilder/distros/arch", "rebuilder/distros/debian", "rebuilder/distros/nixos", "rebuilder/distros/suse"],
    ["rebuilder/rebuild"],
    ["rebuilder/distros/common", "rebuilder/distro"],
    ["rebuilder/buildenv"],
    ["rebuilder/verdict"],
    ["rebuilder/kmod/fuzz"],
    ["rebuilder/kmod"],
    ["rebuilder/archive"],
    ["rebuilder/net"],
    ["tests/lib"],
    ["rebuilder/base"],
    ["schema", "schema/attestation"],
]
SOURCE = re.compile(r"\.(cc|h)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SCANNED = ("rebuilder", "server", "attest", "schema", "tests")


def packages(root):
    """Every folder with a BUILD.bazel and C++ files below the scanned roots."""
    out = set()
    for top in SCANNED:
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [x for x in dirs if not x.startswith(("bazel-", "."))]
            if "BUILD.bazel" in files and any(SOURCE.search(f) for f in files):
                out.add(os.path.relpath(d, root))
    return out


def package_of(path, pkgs):
    d = os.path.dirname(path)
    while d and d not in pkgs:
        d = os.path.dirname(d)
    return d or None


def is_test(name):
    return bool(re.search(r"(_test|_fuzz|fuzz_test|test_[a-z_]+)\.(cc|h)$", name)) or "/fuzz/" in name


def edges(root, pkgs):
    """{(from, to, test): [file:line, ...]} for includes across packages."""
    found = {}
    for pkg in sorted(pkgs):
        for f in sorted(os.listdir(os.path.join(root, pkg))):
            if not SOURCE.search(f):
                continue
            rel = os.path.join(pkg, f)
            with open(os.path.join(root, rel), errors="replace") as fh:
                for n, line in enumerate(fh, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    to = package_of(m.group(1), pkgs)
                    if to is None or to == pkg:
                        continue
                    found.setdefault((pkg, to, is_test(rel)), []).append("%s:%d" % (rel, n))
    return found


def rank_of():
    return {p: i for i, layer in enumerate(LAYERS) for p in layer}


def dot(pkgs, found):
    rank = rank_of()
    lines = ["digraph kmr_includes {", "  rankdir=TB;", '  node [shape=box, fontname="monospace", fontsize=10];']
    for i, layer in enumerate(LAYERS):
        present = [p for p in layer if p in pkgs]
        if present:
            lines.append("  { rank=same; %s }" % " ".join('"%s";' % p for p in present))
    seen = set()
    for (a, b, test) in sorted(found):
        if (a, b) in seen:
            continue
        prod = (a, b, False) in found
        seen.add((a, b))
        style = "" if prod else ' [style=dashed, color=gray]'
        if rank.get(b, -1) <= rank.get(a, -1):
            style = ' [color=red, penwidth=2]'
        lines.append('  "%s" -> "%s"%s;' % (a, b, style))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.getcwd())
    ap.add_argument("--dot")
    ap.add_argument("--svg")
    ap.add_argument("--check-dot")
    a = ap.parse_args()
    pkgs = packages(a.root)
    rank = rank_of()
    problems = []
    for p in sorted(pkgs - set(rank)):
        problems.append("package %s has no layer in tests/lint/include_graph.py" % p)
    found = edges(a.root, pkgs)
    for (src, dst, test), where in sorted(found.items()):
        if src in rank and dst in rank and rank[dst] <= rank[src]:
            kind = "sideways" if rank[dst] == rank[src] else "upward"
            problems.append("%s arrow %s -> %s (%s)" % (kind, src, dst, ", ".join(where[:3])))
    text = dot(pkgs, found)
    if a.dot:
        with open(a.dot, "w") as fh:
            fh.write(text)
    if a.svg:
        subprocess.run(["dot", "-Tsvg", "-o", a.svg], input=text.encode(), check=True)
    if a.check_dot:
        with open(a.check_dot) as fh:
            if fh.read() != text:
                problems.append("%s is stale: regenerate with tests/lint/include_graph.py --dot %s --svg %s" %
                                (a.check_dot, a.check_dot, a.check_dot[:-4] + ".svg"))
    arrows = len({(s, d) for (s, d, _t) in found})
    for p in problems:
        print("include graph: " + p)
    print("include graph: %d packages, %d arrows, %d problem(s)" % (len(pkgs), arrows, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
