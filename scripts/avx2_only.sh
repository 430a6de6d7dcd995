#!/bin/sh
# Run a command with AVX-512, VNNI, BF16/FP16 and AMX hidden from CPUID, so that
# LiteRT (XNNPACK), oneDNN and numpy pick their AVX2 kernels:
#
#     scripts/avx2_only.sh python scripts/bench_vs_fer.py
#
# This reproduces an AVX2-only CPU's kernel choice, not its micro-architecture
# (an AVX2-only Zen 1 has half-width vector units): quote its figures as
# "AVX2 kernels on <this CPU>", never as an AVX2 CPU's. Needs gcc and Linux
# CPUID faulting (`cpuid_fault` in /proc/cpuinfo).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
grep -qw cpuid_fault /proc/cpuinfo || { echo "avx2_only: this CPU or kernel has no CPUID faulting (cpuid_fault)" >&2; exit 2; }
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
gcc -O2 -shared -fPIC -o "$build/cpuid_avx2.so" "$here/cpuid_avx2.c" -ldl
FERKERAS_CPUID_MASK=avx2 LD_PRELOAD="$build/cpuid_avx2.so${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
