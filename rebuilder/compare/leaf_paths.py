#!/usr/bin/env python3
"""Differing leaf member paths of a kmr or diffoscope JSON report.

A node is a *member* when it names a file inside a container (not a view such
as "file list", a command line or an ELF section). The leaf paths are the
chains of member names from the root to members with no member below them.
Usage: leaf_paths.py REPORT.json  -> one path per line, sorted.
"""
import json
import sys

# kmr view kinds (never members).
KMR_VIEWS = {"file-list", "filetype", "elf-header", "elf-program-headers", "elf-section-headers",
             "elf-symbols", "elf-notes", "elf-section", "elf-uncovered", "modinfo", "disassembly",
             "strings", "hexdump", "module-trailer", "bzimage-header", "rpm-header"}
DIFFOSCOPE_META = {"file list", "filetype from file(1)", "filetype from diffoscope", "metadata",
                   "encoding", "Ordinary files"}


def is_member(node, kmr, parent_name=""):
    name = node.get("source1") or ""
    if kmr:
        return node.get("kind") not in KMR_VIEWS
    if name in DIFFOSCOPE_META or "{}" in name or " " in name:
        return False
    # diffoscope's RPM "header" view; a view named like its parent (md5sums).
    if name == "header" or norm(name) == norm(parent_name).split("/")[-1]:
        return False
    return True


def one_sided(node):
    return "/dev/null" in (node.get("source1"), node.get("source2"))


def norm(name):
    while name.startswith("./"):
        name = name[2:]
    # Same node, different label: diffoscope names a decompressed kernel
    # payload "<file>-content", kmr "vmlinux (decompressed payload)".
    if name == "vmlinux (decompressed payload)" or name.endswith("-content"):
        return "{decompressed}"
    return name


def leaves(node, kmr, prefix, out):
    # An added/removed member is a leaf: kmr reports it with hash and size,
    # diffoscope --new-file also dumps its contents against /dev/null.
    here = node.get("source1") if node.get("source1") != "/dev/null" else node.get("source2")
    kids = [] if prefix and one_sided(node) else [c for c in node.get("details", []) if is_member(c, kmr, here or "")]
    if not kids:
        out.add("/".join(p for p in prefix if p))
        return
    for c in kids:
        name = c.get("source1")
        if name == "/dev/null":
            name = c.get("source2")
        # diffoscope wraps an RPM payload in a "content" node: transparent.
        leaves(c, kmr, prefix + ["" if (not kmr and name == "content") else norm(name)], out)


def main():
    report = json.load(open(sys.argv[1]))
    kmr = "summary" in report
    out = set()
    leaves(report, kmr, [], out)
    for p in sorted(out):
        print(p)


if __name__ == "__main__":
    main()
