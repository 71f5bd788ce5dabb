#!/bin/sh
# Runs inside the sandbox of a Debian or Proxmox rebuild:
#   debian-build.sh PARENT DSC TREE
# unpacks the source package DSC (in PARENT) into PARENT/TREE and builds
# the binary packages there, unsigned, as the .buildinfo's Build-Path says.
set -e
cd "$1"
dpkg-source -x "$2" "$3"
cd "$3"
dpkg-buildpackage -us -uc -d -b
