#!/usr/bin/env bash
# kdcl import teacher-topk: JSONL top-k teachers into datasets, read back with h5py; malformed
# input refused line by line; kill -9 never damages the dataset.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_import_topk.py" "$kdcl" "$work"
