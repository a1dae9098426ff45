#!/usr/bin/env bash
# kdcl distill end to end: every loss against a PyTorch implementation of its definition,
# top-k with k = C against dense, online against offline, and bad teacher input.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_distill.py" "$kdcl" "$work"
