#!/usr/bin/env bash
# Tunes CLBlast's float GEMM kernels (Xgemm, XgemmDirect) for one OpenCL device with CLBlast's own
# tuner and stores the best parameters where kdcl applies them: the kdcl cache dir
# ($KDCL_CACHE_DIR, else $XDG_CACHE_HOME/kdcl or ~/.cache/kdcl), as
# clblast-params-<hash of platform, device, device version, driver version>.json. kdcl hands them
# to CLBlastOverrideParameters before its first CLBlast call on that device; a driver update
# changes the key, so the file is then simply not found (tune again).
#
# Debian ships libclblast without the clblast_tuner_* programs, but the library exports the same
# search as clblast::TuneXgemm / TuneXgemmDirect (C++), which scripts/tune_clblast.cpp calls;
# this script builds it (g++, libclblast-dev) and runs it. Random search over a fraction of each
# kernel's space: the defaults take ~5-20 minutes on 2 CPU cores under PoCL (each candidate is
# an OpenCL compile). Run it on an idle machine: a loaded one picks the wrong winner.
# Each winner is then checked through CLBlast's Sgemm routine (a fresh process forcing that
# kernel, 8 shapes, all transposes, against a double reference): the tuner checks the kernel
# alone, and on PoCL 3.1 it picked a GEMMK=1 Xgemm configuration that Sgemm computes wrongly
# with. A refused winner is kept in the file under "rejected" (not applied) and CLBlast keeps
# its defaults for that kernel. Last, the size from which Sgemm switches from XgemmDirect to
# Xgemm (GemmRoutine XGEMM_MIN_INDIRECT_SIZE) is set from timings of both on squares, as
# CLBlast's routine tuner does.
#
# usage: scripts/tune_clblast.sh [--device SEL] [--size N] [--direct-size N] [--fraction F]
#                                [--direct-fraction F] [--kernels Xgemm,XgemmDirect] [--out FILE]
#   --device SEL   as kdcl --device (index, cpu|gpu|accelerator, name substring; $KDCL_DEVICE)
#   --size N       Xgemm tuned on N^3 (default 512); --direct-size for XgemmDirect (default 256)
#   --fraction F   share of Xgemm's space tried at random (default 0.002; XgemmDirect 0.01)
# Afterwards compare: KDCL_CLBLAST_PARAMS=none kdcl bench gemm --gemm clblast ... (defaults)
# against the same without it (tuned). Tuning again replaces the file; deleting it restores
# CLBlast's defaults. The per-shape back-end choices (gemm-choice-*.json) are keyed by the
# parameters in force, so they are measured afresh after a new tuning.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${KDCL_BUILD_DIR:-$root/build}

bash "$root/scripts/setup.sh" --tune

mkdir -p "$build"
bin="$build/tune_clblast"
src="$root/scripts/tune_clblast.cpp"
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
  echo "tune_clblast: building $bin" >&2
  g++ -O2 -std=c++17 -Wall -o "$bin" "$src" -lclblast -lOpenCL
fi
exec "$bin" "$@"
