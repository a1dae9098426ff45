#!/usr/bin/env bash
# Bad input to train/eval/predict: one clear error line, exit 1 (2 for usage), no output damage.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_bad_input.py" "$kdcl" "$work"
