#!/usr/bin/env bash
# Recipes (--config), run directories (--run-dir, --keep, --force, --resume DIR), the report.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_experiment.py" "$kdcl" "$work"
