#!/usr/bin/env bash
# Refuse to start on a CPU that lacks the x86 extensions the ScaNN kernels were compiled for.
#
# Both images run ScaNN code built with -mavx2 -mfma (the TF Serving image by our Bazel
# flags, scann-serve by the scann wheel). On a CPU without them the process dies with
# SIGILL ("Illegal instruction", exit code 132) somewhere deep in a search, which is hard
# to diagnose; this check turns that into one plain sentence before anything starts.
#
# Usage: check_cpu.sh [FLAG...]            (default flags: avx2 fma)
# Environment:
#   SCANN_CPUINFO         file to read instead of /proc/cpuinfo (tests)
#   SCANN_CPU_ARCH        machine name instead of `uname -m` (tests)
#   SCANN_SKIP_CPU_CHECK  set to 1 to skip the check (you accept SIGILL crashes)
set -euo pipefail

if [[ "${SCANN_SKIP_CPU_CHECK:-0}" == "1" ]]; then
  exit 0
fi

arch="${SCANN_CPU_ARCH:-$(uname -m)}"
if [[ "${arch}" != "x86_64" && "${arch}" != "amd64" ]]; then
  # AVX2/FMA are x86 extensions; other architectures use their own wheels/builds.
  exit 0
fi

cpuinfo="${SCANN_CPUINFO:-/proc/cpuinfo}"
if [[ ! -r "${cpuinfo}" ]]; then
  echo "check_cpu: cannot read ${cpuinfo}; skipping the AVX2/FMA check." >&2
  exit 0
fi

if (($# == 0)); then
  set -- avx2 fma
fi

# The first "flags" line describes every core of a homogeneous machine.
flags=" $(grep -m1 -E '^flags[[:space:]]*:' "${cpuinfo}" | cut -d: -f2-) "
missing=()
for flag in "$@"; do
  if [[ "${flags}" != *" ${flag} "* ]]; then
    missing+=("${flag}")
  fi
done

if ((${#missing[@]} > 0)); then
  {
    echo "ERROR: this CPU does not support ${missing[*]} (checked ${cpuinfo})."
    echo "The ScaNN ops in this image are compiled for x86-64 CPUs with AVX2 and FMA"
    echo "(Intel Haswell / AMD Excavator, 2013, or newer); without them the server"
    echo "would crash with 'Illegal instruction'."
    echo "Fix: schedule the pod on nodes with AVX2+FMA (e.g. a nodeSelector on"
    echo "feature.node.kubernetes.io/cpu-cpuid.AVX2=true), or rebuild the image without"
    echo "-mavx2/-mfma (see BUILD.md, 'CPUs without AVX2')."
    echo "Set SCANN_SKIP_CPU_CHECK=1 to start anyway."
  } >&2
  exit 78 # EX_CONFIG
fi
