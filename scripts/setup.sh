#!/usr/bin/env bash
# Installs every Debian package kdcl's build, tests and demo need, and the interop virtual
# environment (.venv: Debian's python3 with its torch/h5py/numpy, plus safetensors and
# onnxruntime from PyPI, which Debian 12 lacks). Non-interactive and idempotent: what is
# already present is skipped, so a second run does nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packages=(
  build-essential cmake pkg-config
  ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd clinfo
  libclblast-dev libhdf5-dev hdf5-tools libcjson-dev libcmocka-dev zlib1g-dev
  dataset-fashion-mnist
  python3 python3-h5py python3-numpy python3-torch python3-matplotlib
  libopenblas0-pthread python3-threadpoolctl python3-venv
)
packages+=(valgrind)  # scripts/test.sh runs the host-only unit tests under memcheck
# scripts/fuzz.sh (setup.sh --fuzz): clang and its libFuzzer/sanitizer runtimes
[ "${1:-}" = "--fuzz" ] && packages+=(clang libclang-rt-14-dev)
# scripts/tune_clblast.sh (setup.sh --tune): a C++ compiler for its driver of CLBlast's tuners
[ "${1:-}" = "--tune" ] && packages+=(g++)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "kdcl setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Interop (tests/integration/test_interop.sh, scripts/kdcl_onnx.py): versions pinned to ones
# built for Python 3.11 that work with Debian's numpy 1.24. --system-site-packages lets the
# venv see Debian's torch, h5py and numpy; pip leaves numpy alone since 1.24 satisfies both.
venv="$root/.venv"
# onnxruntime's own dependencies are pinned too, so a rerun months later builds the same venv
# (sympy and mpmath come from Debian, with torch).
pins=(onnxruntime==1.18.1 safetensors==0.4.5
      protobuf==4.25.3 flatbuffers==24.3.25 packaging==24.1 coloredlogs==15.0.1 humanfriendly==10.0)
venv_ok() {
  "$venv/bin/python" - "${pins[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
import h5py, numpy, onnxruntime, safetensors.numpy, torch  # noqa: F401,E401
PY
}
if ! venv_ok; then
  echo "kdcl setup: creating $venv with ${pins[*]:0:2}" >&2
  [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
  venv_ok || { echo "kdcl setup: $venv cannot import onnxruntime/safetensors/torch/h5py" >&2; exit 1; }
fi
