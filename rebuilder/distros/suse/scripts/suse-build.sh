#!/bin/sh
# Runs inside the sandbox of a SUSE rebuild:
#   suse-build.sh SRPM TOPDIR [--define 'NAME BODY']...
# installs the source RPM into TOPDIR and builds its spec with -ba, as OBS
# does (the source RPM is rebuilt too; its id lands in the binary header),
# with the macros recorded in the shipped header.
set -e
srpm=$1
topdir=$2
shift 2
rpm -i --nosignature --nodigest "$@" "$srpm"
spec=$(ls "$topdir"/SPECS/*.spec | head -n 1)
rpmbuild -ba --nodeps "$@" "$spec"
