#!/usr/bin/env bash
# The README's first command: Fashion-MNIST imported, a teacher trained, its outputs written
# into the data, and the same small student trained twice with the same seed and budget —
# labels only, and distilled from the teacher — then a comparison table and a report with the
# runs' curves. The settings are the recipes in models/recipes/. Everything lands in demo-out/
# (or $KDCL_DEMO_DIR): data/, one run directory per run in runs/, and report/report.md. A rerun
# reuses the data and a finished teacher (and resumes an interrupted one); students are rerun.
#   scripts/demo.sh [--seed N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bash "$root/scripts/build.sh" >/dev/null
kdcl="$root/build/kdcl"
out=${KDCL_DEMO_DIR:-$root/demo-out}
mkdir -p "$out/data" "$out/runs"
out=$(cd "$out" && pwd)
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-$root/build/pocl-cache}
export KDCL_CACHE_DIR=${KDCL_CACHE_DIR:-$root/build/kdcl-cache}
recipes="$root/models/recipes"
teacher_epochs=${KDCL_DEMO_TEACHER_EPOCHS:-10}
student_epochs=${KDCL_DEMO_STUDENT_EPOCHS:-25}
cd "$root" # the recipes name the model specs relative to the repository root

step() { printf '\n== %s\n' "$*" >&2; }

if [ ! -f "$out/data/fashion-mnist-test.h5" ]; then
  step "importing Fashion-MNIST"
  "$kdcl" import fashion-mnist --out-dir "$out/data"
fi

# Each run keeps its recipe, metrics, checkpoints and evaluation in its own run directory.
teacher_run="$out/runs/teacher"
teacher="$teacher_run/checkpoints/latest.h5"
if [ ! -f "$teacher_run/eval.json" ]; then
  if [ -f "$teacher" ]; then
    step "resuming the teacher run in $teacher_run"
    "$kdcl" train --resume "$teacher_run" --epochs "$teacher_epochs"
  else
    step "training the teacher (models/recipes/fmnist-teacher.json, $teacher_epochs epochs)"
    "$kdcl" train --config "$recipes/fmnist-teacher.json" --data "$out/data/fashion-mnist-train.h5" \
      --val "$out/data/fashion-mnist-test.h5" --epochs "$teacher_epochs" --run-dir "$teacher_run" --force
  fi
fi

labelled="$out/data/fashion-mnist-train-teacher.h5"
labelled_test="$out/data/fashion-mnist-test-teacher.h5"
if [ ! -f "$labelled" ] || [ "$labelled" -ot "$teacher" ]; then
  step "writing the teacher's logits into the data"
  "$kdcl" label --teacher "$teacher" --data "$out/data/fashion-mnist-train.h5" --out "$labelled"
  "$kdcl" label --teacher "$teacher" --data "$out/data/fashion-mnist-test.h5" --out "$labelled_test"
fi

common=(--data "$labelled" --val "$labelled_test" --epochs "$student_epochs" --seed "$seed" --force)
labels_run="$out/runs/student-labels-s$seed"
kd_run="$out/runs/student-kd-s$seed"
step "student, labels only (models/recipes/fmnist-student-labels.json, seed $seed)"
"$kdcl" distill --config "$recipes/fmnist-student-labels.json" "${common[@]}" --run-dir "$labels_run"
step "student, distilled from the teacher (models/recipes/fmnist-student-kd.json, seed $seed)"
"$kdcl" distill --config "$recipes/fmnist-student-kd.json" "${common[@]}" --run-dir "$kd_run"

step "comparison on the Fashion-MNIST test set"
"${KDCL_PYTHON:-/usr/bin/python3}" "$root/scripts/demo_table.py" "$kdcl" "$labelled_test" \
  "teacher=$teacher_run" "student, labels only=$labels_run" "student, distilled=$kd_run"

step "report: curves of the three runs and their final metrics"
"${KDCL_PYTHON:-/usr/bin/python3}" "$root/scripts/report.py" "$teacher_run" "$labels_run" "$kd_run" \
  --out "$out/report" >/dev/null
echo "report: $out/report/report.md (figures: $out/report/*.png)" >&2
