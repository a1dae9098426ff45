#!/usr/bin/env bash
# The README's first command: Fashion-MNIST imported, a teacher trained, its outputs written
# into the data, and the same small student trained twice with the same seed and budget —
# labels only, and distilled from the teacher — then a comparison table.
# Everything lands in demo-out/ (or $KDCL_DEMO_DIR); a rerun reuses what is already there.
#   scripts/demo.sh [--seed N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bash "$root/scripts/build.sh" >/dev/null
kdcl="$root/build/kdcl"
out=${KDCL_DEMO_DIR:-$root/demo-out}
mkdir -p "$out/data" "$out/runs"
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-$root/build/pocl-cache}
export KDCL_CACHE_DIR=${KDCL_CACHE_DIR:-$root/build/kdcl-cache}
teacher_spec="$root/models/fmnist-cnn.json"
student_spec="$root/models/fmnist-mlp-small.json"
teacher_epochs=${KDCL_DEMO_TEACHER_EPOCHS:-10}
student_epochs=${KDCL_DEMO_STUDENT_EPOCHS:-25}

step() { printf '\n== %s\n' "$*" >&2; }

if [ ! -f "$out/data/fashion-mnist-test.h5" ]; then
  step "importing Fashion-MNIST"
  "$kdcl" import fashion-mnist --out-dir "$out/data"
fi

teacher="$out/runs/teacher.h5"
if [ ! -f "$teacher" ]; then
  step "training the teacher ($(basename "$teacher_spec"), $teacher_epochs epochs)"
  "$kdcl" train --model "$teacher_spec" --data "$out/data/fashion-mnist-train.h5" \
    --val "$out/data/fashion-mnist-test.h5" --out "$teacher.tmp.h5" --epochs "$teacher_epochs" \
    --batch 128 --lr 0.002 --lr-schedule cosine --seed 1 --log "$out/runs/teacher.jsonl"
  mv "$teacher.tmp.h5" "$teacher"
fi

labelled="$out/data/fashion-mnist-train-teacher.h5"
labelled_test="$out/data/fashion-mnist-test-teacher.h5"
if [ ! -f "$labelled" ] || [ "$labelled" -ot "$teacher" ]; then
  step "writing the teacher's logits into the data"
  "$kdcl" label --teacher "$teacher" --data "$out/data/fashion-mnist-train.h5" --out "$labelled"
  "$kdcl" label --teacher "$teacher" --data "$out/data/fashion-mnist-test.h5" --out "$labelled_test"
fi

common=(--model "$student_spec" --data "$labelled" --val "$labelled_test" --epochs "$student_epochs"
        --batch 128 --lr 0.002 --lr-schedule cosine --seed "$seed")
step "student, labels only (seed $seed)"
"$kdcl" distill "${common[@]}" --loss ce --out "$out/runs/student-labels-s$seed.h5" \
  --log "$out/runs/student-labels-s$seed.jsonl"
step "student, distilled from the teacher (seed $seed)"
"$kdcl" distill "${common[@]}" --loss kd --temperature 2 --alpha 0.3 \
  --out "$out/runs/student-kd-s$seed.h5" --log "$out/runs/student-kd-s$seed.jsonl"

step "comparison on the Fashion-MNIST test set"
"${KDCL_PYTHON:-/usr/bin/python3}" "$root/scripts/demo_table.py" "$kdcl" "$labelled_test" \
  "teacher=$teacher:$out/runs/teacher.jsonl" \
  "student, labels only=$out/runs/student-labels-s$seed.h5:$out/runs/student-labels-s$seed.jsonl" \
  "student, distilled=$out/runs/student-kd-s$seed.h5:$out/runs/student-kd-s$seed.jsonl"
