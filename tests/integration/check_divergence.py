"""The divergence guard and crash safety of the data writers:

- a loss that becomes Inf or NaN stops the run within a step or two with exit 3 and one line
  naming the step; the checkpoint it leaves is the last good one (finite weights, an earlier
  step), never the diverged state, and a run directory gets no eval.json;
- kill -9 of `kdcl label` at random moments leaves the dataset it rewrites in place either as
  it was (byte for byte) or completely labelled, never half written."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from common import Kdcl, clusters, write_dataset, write_spec

k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path

# --- rows whose features are finite but huge: the logits overflow when training reaches them ---
N, D, C, B = 512, 8, 3, 32
x, y = clusters(N, D, C, seed=5)
x[448:] = 3e38  # finite float32: passes the input checks; the forward pass overflows to Inf
write_dataset(P("blowup.h5"), x, y, C)
write_spec(P("mlp.json"), {"name": "mlp", "input": [D], "layers": [
    {"type": "dense", "units": 16}, {"type": "relu"}, {"type": "dense", "units": C}]})
DIVERGE_STEP = 448 // B + 1  # the first step that reads a huge row (file order)


def diverge(*extra):
    p = k.run("train", "--model", P("mlp.json"), "--data", P("blowup.h5"), "--batch", B,
              "--no-shuffle", "--epochs", 2, "--quiet", *extra, expect=3)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("kdcl: error: the loss became"), p.stderr
    step = int(lines[0].split("at step ")[1].split(";")[0])
    assert DIVERGE_STEP <= step <= DIVERGE_STEP + 1, (step, lines[0])
    return lines[0]


def checkpoint_state(path):
    with h5py.File(path, "r") as f:
        weights = [f["model"][n][...] for n in f["model"]]
        return int(f["train/step"][()]), weights


# checkpoints every 4 steps: the last good one (step 12) stays; the diverged state is not written
line = diverge("--out", P("ck.h5"), "--checkpoint-every", 4)
step, weights = checkpoint_state(P("ck.h5"))
assert step == (DIVERGE_STEP - 1) // 4 * 4 and all(np.isfinite(w).all() for w in weights), step
print(f"divergence: {line}; ck.h5 holds step {step}, finite")

# detected at a step that is neither logged nor checkpointed (the default --log-every 50), and
# with a learning rate that blows up the weights rather than the inputs
for log_every in (50, 16, 10):
    diverge("--out", P("ck-%d.h5" % log_every), "--log-every", log_every)
write_dataset(P("plain.h5"), clusters(N, D, C, seed=5)[0], y, C)
for optimizer in ("adamw", "sgd"):
    p = k.run("train", "--model", P("mlp.json"), "--data", P("plain.h5"), "--out", P("lr.h5"),
              "--lr", 1e5, "--optimizer", optimizer, "--epochs", 3, "--quiet", expect=3)
    assert p.stderr.startswith("kdcl: error: the loss became"), p.stderr
    assert not os.path.exists(P("lr.h5.lock")), "a stale lock after divergence"

# an existing checkpoint from a good run is left byte for byte when a new run diverges
write_dataset(P("good.h5"), clusters(N, D, C, seed=5)[0], y, C)
k.run("train", "--model", P("mlp.json"), "--data", P("good.h5"), "--out", P("good-ck.h5"),
      "--epochs", 1, "--quiet")
before = hashlib.sha256(open(P("good-ck.h5"), "rb").read()).hexdigest()
diverge("--out", P("good-ck.h5"))
assert hashlib.sha256(open(P("good-ck.h5"), "rb").read()).hexdigest() == before
# in a run directory: no eval.json, latest.h5 not the diverged state
diverge("--run-dir", P("run"), "--checkpoint-every", 4)
assert not os.path.exists(P("run/eval.json"))
assert checkpoint_state(P("run/checkpoints/latest.h5"))[0] == step
print("divergence: exit 3, good checkpoints untouched, no eval.json")

# --- kill -9 of kdcl label, in place, at random moments ---------------------------------------
rng = random.Random(int(os.environ.get("KDCL_KILL_SEED", "7")))
xl, yl = clusters(20000, 64, 10, seed=9)
write_dataset(P("big.h5"), xl, yl, 10)
write_spec(P("teacher.json"), {"name": "teacher", "input": [64], "layers": [
    {"type": "dense", "units": 256}, {"type": "relu"}, {"type": "dense", "units": 10}]})
k.run("train", "--model", P("teacher.json"), "--data", P("big.h5"), "--out", P("teacher.h5"),
      "--epochs", 1, "--quiet")
t0 = time.monotonic()
k.run("label", "--teacher", P("teacher.h5"), "--data", P("big.h5"), "--out", P("full.h5"))
full_time = time.monotonic() - t0
with h5py.File(P("full.h5"), "r") as f:
    expected = f["teacher/logits"][...]
original = open(P("big.h5"), "rb").read()
outcomes = {"as it was": 0, "labelled": 0}
killed_mid_write = 0
trial = 0
while trial < 4 or (killed_mid_write < 3 and trial < 24):  # 4 at any moment, then targeted
    with open(P("victim.h5"), "wb") as f:
        f.write(original)
    p = subprocess.Popen([k.binary, "label", "--teacher", P("teacher.h5"), "--data",
                          P("victim.h5")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trial += 1
    if trial <= 4:  # any moment
        time.sleep(rng.uniform(0.05, 1.2) * full_time)
    else:          # while victim.h5.tmp, the copy with /teacher, is being written
        while not os.path.exists(P("victim.h5.tmp")) and p.poll() is None:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.005))
    mid = os.path.exists(P("victim.h5.tmp"))
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_mid_write += mid and p.returncode != 0
    data = open(P("victim.h5"), "rb").read()
    if data == original:
        outcomes["as it was"] += 1
        continue
    with h5py.File(P("victim.h5"), "r") as f:  # not the original: must be complete
        assert np.array_equal(f["teacher/logits"][...], expected), f"kill {trial}: partial"
        assert np.array_equal(f["labels/y"][...], yl)
    outcomes["labelled"] += 1
assert outcomes["as it was"] >= 1, outcomes
assert killed_mid_write >= 3, f"only {killed_mid_write} kills landed while victim.h5.tmp existed"
print(f"label: {trial} kill -9 ({killed_mid_write} during the write of victim.h5.tmp): {outcomes}; "
      f"never half written")
