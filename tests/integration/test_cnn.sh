#!/usr/bin/env bash
# CNN layers end to end: PyTorch loads a kdcl CNN checkpoint and reproduces its logits; one
# training step from the same --init matches PyTorch; shapes that do not fit are refused.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_cnn.py" "$kdcl" "$work"
