#!/usr/bin/env bash
# The demo's comparison over several seeds: the small student trained on labels only and
# distilled from the demo's teacher, once per seed, then the mean and spread of test accuracy
# and the distilled-minus-labels gain. Runs scripts/demo.sh first when its teacher is missing.
#   scripts/compare_seeds.sh [SEED ...]     (default: 1 2 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
out=${KDCL_DEMO_DIR:-$root/demo-out}
[ -f "$out/runs/teacher/eval.json" ] || bash "$root/scripts/demo.sh" --seed "${seeds[0]}"
for s in "${seeds[@]}"; do
  [ -f "$out/runs/student-kd-s$s/eval.json" ] && [ -f "$out/runs/student-labels-s$s/eval.json" ] &&
    continue
  bash "$root/scripts/demo.sh" --seed "$s" >/dev/null
done
"${KDCL_PYTHON:-/usr/bin/python3}" - "$root/build/kdcl" "$out" "${seeds[@]}" <<'PY'
import json, statistics, subprocess, sys
kdcl, out, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
test = f"{out}/data/fashion-mnist-test-teacher.h5"
def acc(ckpt):
    r = subprocess.run([kdcl, "eval", "--checkpoint", ckpt, "--data", test, "--json"],
                       check=True, capture_output=True, text=True)
    return 100 * json.loads(r.stdout)["accuracy"]
rows = {s: (acc(f"{out}/runs/student-labels-s{s}/checkpoints/latest.h5"),
            acc(f"{out}/runs/student-kd-s{s}/checkpoints/latest.h5")) for s in seeds}
print("| seed | labels only % | distilled % | gain (points) |")
print("|---|---|---|---|")
for s, (a, b) in rows.items():
    print(f"| {s} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
def summary(values):
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"
labels = [a for a, _ in rows.values()]
kd = [b for _, b in rows.values()]
gain = [b - a for a, b in rows.values()]
print(f"| mean ± sd | {summary(labels)} | {summary(kd)} | {summary(gain)} |")
PY
