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
                   "encoding", "md5sums", "control.tar", "Ordinary files"}


def is_member(node, kmr):
    name = node.get("source1") or ""
    if kmr:
        return node.get("kind") not in KMR_VIEWS
    if name in DIFFOSCOPE_META or "{}" in name or " " in name:
        return False
    return True


def norm(name):
    while name.startswith("./"):
        name = name[2:]
    return name


def leaves(node, kmr, prefix, out):
    kids = [c for c in node.get("details", []) if is_member(c, kmr)]
    if not kids:
        out.add("/".join(prefix))
        return
    for c in kids:
        name = c.get("source1")
        if name == "/dev/null":
            name = c.get("source2")
        leaves(c, kmr, prefix + [norm(name)], out)


def main():
    report = json.load(open(sys.argv[1]))
    kmr = "summary" in report
    out = set()
    leaves(report, kmr, [], out)
    for p in sorted(out):
        print(p)


if __name__ == "__main__":
    main()
