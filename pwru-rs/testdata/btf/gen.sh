#!/bin/sh
# Regenerates fixture.btf from fixture.c (raw BTF, the format of /sys/kernel/btf/vmlinux).
# Needs clang and llvm-objcopy (tested with LLVM 22: apt-get install clang-22 llvm-22).
# The output only holds type and string data (no paths, no compiler version), so it is reproducible.
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-22}
OBJCOPY=${OBJCOPY:-llvm-objcopy-22}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CLANG" -g -O2 -target bpf -c fixture.c -o "$tmp/fixture.o"
"$OBJCOPY" --dump-section .BTF=fixture.btf "$tmp/fixture.o" "$tmp/stripped.o"
