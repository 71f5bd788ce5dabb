#!/usr/bin/env python3
"""Generates an Arch-sized installed module tree for the kmod benchmark.

  gen_modules.py OUTDIR [--count 6000] [--total-mb 450]

Module contents are slices of the machine's shared libraries (real machine
code, so zstd compresses them like real modules), sizes log-normal between
4 KiB and 4 MiB scaled to the requested total. Writes OUTDIR/build (the
build tree: drivers/*/modNNNNN.ko + modules.order) only; bench.sh adds the
proofs, compression and the vmlinux.
"""
import argparse
import glob
import math
import os
import random


def pool_bytes(limit):
    data = bytearray()
    for path in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/*.so*") + glob.glob("/usr/bin/*")):
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                data += f.read()
        except OSError:
            continue
        if len(data) >= limit:
            break
    return bytes(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--total-mb", type=int, default=450)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    lo, hi = 4096, 4 << 20
    target = a.total_mb << 20
    sizes = [min(hi, max(lo, int(math.exp(rng.gauss(10.5, 1.3))))) for _ in range(a.count)]
    # A few of the largest real modules sit near the top of the range.
    for i in rng.sample(range(a.count), 12):
        sizes[i] = hi - rng.randrange(0, 1 << 20)
    # Scale the others so the total matches.
    for _ in range(20):
        total = sum(sizes)
        if abs(total - target) < target // 200:
            break
        f = target / total
        sizes = [min(hi, max(lo, int(s * f))) for s in sizes]
    pool = pool_bytes(64 << 20)
    assert len(pool) > hi * 2, "not enough library bytes for the module pool"
    build = os.path.join(a.outdir, "build")
    subdirs = ["drivers/net", "drivers/gpu", "drivers/usb", "fs", "sound/pci", "net/netfilter", "crypto", "lib"]
    order = []
    for i, size in enumerate(sizes):
        rel = f"{subdirs[i % len(subdirs)]}/mod{i:05d}.ko"
        path = os.path.join(build, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        off = rng.randrange(0, len(pool) - size)
        header = f"\x7fELF module {i}\n".encode()
        with open(path, "wb") as f:
            f.write(header + pool[off:off + size - len(header)])
        order.append(rel[:-3] + ".o")
    with open(os.path.join(build, "modules.order"), "w") as f:
        f.write("\n".join(order) + "\n")
    print(f"{a.count} modules, {sum(sizes) / (1 << 20):.1f} MiB, min {min(sizes)} max {max(sizes)} "
          f"median {sorted(sizes)[len(sizes) // 2]}")


if __name__ == "__main__":
    main()
