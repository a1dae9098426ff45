#!/usr/bin/env bash
# kdcl import fashion-mnist on Debian's real files, read back with h5py; truncated and corrupt
# IDX files are clear errors that leave no output behind.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_import_fmnist.py" "$kdcl" "$work"
