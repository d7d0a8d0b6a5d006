#!/bin/sh
# The sandbox's base image as a file system tarball: Debian bookworm (minbase) with Python 3, numpy (OpenBLAS), git and
# procps, built with debootstrap from deb.debian.org (no Docker registry needed). Needs root and debootstrap.
#
#   sh build_base.sh OUT.tar [MIRROR]
#   docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' OUT.tar isobench-base:bookworm
#
# `isobench images build` runs this, caches the tarball under ~/.cache/isobench/images/ (keyed by this file's
# content) and imports it.
set -eu
out="${1:?usage: build_base.sh OUT.tar [MIRROR]}"
mirror="${2:-http://deb.debian.org/debian}"
suite=bookworm
# libopenblas0-pthread: without it numpy falls back to the reference BLAS, 26x slower at a 256x256 matmul than
# the OpenBLAS in the PyPI wheel the local sandbox uses, so the demo model's share of a step (and every ratio)
# differed between sandboxes
packages=python3,python3-numpy,libopenblas0-pthread,python-is-python3,git,ca-certificates,procps
root="$(mktemp -d "${TMPDIR:-/tmp}/isobench-rootfs.XXXXXX")"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror"
# what an image does not need: package caches and lists, documentation, device nodes (docker makes /dev)
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/dev/*
tar --numeric-owner --xattrs -C "$root" -cf "$out.part" .
mv "$out.part" "$out"
