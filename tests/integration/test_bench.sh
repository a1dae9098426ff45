#!/usr/bin/env bash
# kdcl bench: gemm and step print one JSON object with the documented fields, results within
# float error of a double reference, launches per step as fused; bad flags are refused.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_bench.py" "$kdcl" "$work"
