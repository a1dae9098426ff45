#!/usr/bin/env bash
# The divergence guard (exit 3, good checkpoints kept) and kill -9 of kdcl label.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_divergence.py" "$kdcl" "$work"
