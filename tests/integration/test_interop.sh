#!/usr/bin/env bash
# Interop with the real packages: PyTorch, safetensors (kdcl export) and onnxruntime reproduce
# kdcl predict on MLP and CNN checkpoints; teachers from scripts/teacher_logits_torch.py distil a
# student; the README's python blocks run and what they write trains. Runs in .venv (made by
# scripts/setup.sh from Debian's python3, $KDCL_PYTHON, with safetensors and onnxruntime from
# PyPI): a missing package fails the test, it is never skipped.
set -euo pipefail
kdcl=$1
work=$2
py="$KDCL_SOURCE_DIR/.venv/bin/python"
if [ ! -x "$py" ]; then
  echo "test_interop: $py is missing: run scripts/setup.sh (it creates .venv with safetensors" \
       "and onnxruntime)" >&2
  exit 1
fi
rm -rf "$work" && mkdir -p "$work"
exec "$py" "$KDCL_SOURCE_DIR/tests/integration/check_interop.py" "$kdcl" "$work"
