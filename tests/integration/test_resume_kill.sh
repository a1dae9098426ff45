#!/usr/bin/env bash
# Killed and interrupted distillation runs resume to the uninterrupted run's exact weights;
# a second writer of one checkpoint path is refused.
set -euo pipefail
kdcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
exec "${KDCL_PYTHON:-/usr/bin/python3}" "$KDCL_SOURCE_DIR/tests/integration/check_resume_kill.py" "$kdcl" "$work"
