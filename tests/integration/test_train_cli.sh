#!/usr/bin/env bash
# kdcl train/eval/predict end to end on data written by h5py, checked with PyTorch.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_train_cli.py" "$kdcl" "$work"
