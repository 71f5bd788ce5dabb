#!/bin/sh
# Runs inside the sandbox of a NixOS rebuild, in the job's own store:
#   nix-realise.sh DRV
# rebuilds every output of DRV and dumps each as out/<name>.nar (the
# rebuilt .check copy when the output was already present).
# With KMR_NIX_IMPORT set, the paths in that file (nix-store --export
# format, verified by kmr) are imported first: the job's store was written by
# nix-instantiate in an earlier sandbox, and the host does not write to it.
# Exit 2/3: the store could not be queried, imported or cleaned; else nix's status.
set -u
drv=$1
if [ -n "${KMR_NIX_IMPORT:-}" ]; then
  nix-store --import < "$KMR_NIX_IMPORT" > /dev/null || { echo "kmr: nix-store --import of $KMR_NIX_IMPORT failed"; exit 2; }
fi
outs=$(nix-store --query --outputs "$drv") || exit 2
valid=1
for o in $outs; do nix-store --check-validity "$o" 2>/dev/null || valid=0; rm -rf "$o.check"; done
if [ $valid = 1 ]; then
  echo "kmr: outputs present: nix-store --realise --check --keep-failed $drv"
  nix-store --realise --check --keep-failed "$drv"; rc=$?
  if [ $rc != 0 ]; then
    any=0; for o in $outs; do [ -e "$o.check" ] && any=1; done
    [ $any = 1 ] || exit $rc
    # --check stops at the first differing output; the others were not
    # compared. Rebuild every output: drop them from the store and realise.
    echo "kmr: nix reports the rebuild differs (exit $rc); rebuilding every output"
    for o in $outs; do rm -rf "$o.check"; done
    nix-store --delete $outs || { echo "kmr: cannot delete the outputs to rebuild them all"; exit 3; }
    nix-store --realise "$drv" || exit $?
  fi
else
  echo "kmr: outputs absent: nix-store --realise $drv"
  nix-store --realise "$drv" || exit $?
fi
for o in $outs; do
  src=$o; [ -e "$o.check" ] && src=$o.check
  nix-store --dump "$src" > "out/$(basename "$o").nar" || exit 2
done
