"""Crash safety and interrupts of a distillation run (dropout in the student, offline teacher):

- 20 SIGKILLs at random moments (start-up, steps, checkpoint writes), each followed by --resume to
  the same --out: every checkpoint left behind is whole, progress never goes backwards, every
  resume starts, and the final weights, optimizer state and position are bit-identical to the
  uninterrupted run's;
- SIGINT and SIGTERM (on a training run with long epochs) stop after the current step with a checkpoint of the position reached (an
  epoch's middle included) and exit 130 / 143 with one line saying so; resuming it gives the
  uninterrupted run's bits; a second SIGINT exits at once;
- a second run writing the same --out is refused while the first runs (--no-file-locking and
  HDF5_USE_FILE_LOCKING=FALSE turn that off)."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from common import Kdcl, clusters, write_dataset, write_spec

k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path
rng = random.Random(int(os.environ.get("KDCL_KILL_SEED", "20240229")))

N, D, C, B, EPOCHS = 1024, 32, 5, 16, 40
STEPS_PER_EPOCH = N // B
x, y = clusters(N, D, C, seed=3, spread=2.0)
write_dataset(P("data.h5"), x, y, C)
with h5py.File(P("data.h5"), "a") as f:
    g = f.create_group("teacher")
    g.attrs["kind"] = "logits"
    g.attrs["teacher_id"] = "test"
    g.attrs["num_classes"] = np.int32(C)
    g.attrs["k"] = np.int32(C)
    g.create_dataset("logits", data=np.random.default_rng(0).standard_normal((N, C)).astype(np.float32))
write_spec(P("student.json"), {"name": "student", "input": [D], "layers": [
    {"type": "dense", "units": 64}, {"type": "relu"}, {"type": "dropout", "rate": 0.25},
    {"type": "dense", "units": C}]})


def args(out, *extra, resume=False):
    a = ["distill", "--data", P("data.h5"), "--out", out, "--epochs", EPOCHS, "--quiet"]
    if resume:
        return [*a, "--resume", out, *extra]
    return [*a, "--model", P("student.json"), "--batch", B, "--seed", 7, "--temperature", 2,
            "--alpha", 0.3, "--lr", 0.003, *extra]


def start(a, **kw):
    return subprocess.Popen([k.binary, *map(str, a)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def state(path):
    """Everything a resumed run must reproduce: weights, optimizer state, position."""
    with h5py.File(path, "r") as f:
        assert int(f.attrs["complete"]) == 1, f"{path}: not a complete checkpoint"
        s = {}
        f.visititems(lambda n, o: s.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) and
                     (n.startswith("model/") or n.startswith("optimizer/") or n.startswith("train/"))
                     else None)
        return s


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)


def step_of(path):
    with h5py.File(path, "r") as f:
        return int(f["train/step"][()]), int(f["train/epoch"][()]), int(f["train/data_cursor"][()])


t0 = time.monotonic()
k.run(*args(P("ref.h5"), "--checkpoint-every", 7))
t_ref = time.monotonic() - t0
ref = state(P("ref.h5"))
assert ref["train/step"] == EPOCHS * STEPS_PER_EPOCH and ref["train/epoch"] == EPOCHS
print(f"uninterrupted run: {t_ref:.2f} s")

# --- 20 SIGKILLs, each followed by --resume --------------------------------------------------
out = P("killed.h5")
kills, rounds, launches, last_step, steps_seen = 0, 0, 0, 0, []
while kills < 20:
    resume = os.path.exists(out)
    p = start(args(out, "--checkpoint-every", 7, resume=resume))
    launches += 1
    time.sleep(rng.uniform(0, max(t_ref / 5, 0.3)))
    if p.poll() is None:
        p.kill()
        p.communicate()
        kills += 1
    else:
        _, err = p.communicate()
        assert p.returncode == 0, f"run {launches} (resume={resume}) failed: {err}"
    if os.path.exists(out):
        s = state(out)  # whole and loadable after every kill
        step = int(s["train/step"])
        assert step >= last_step, f"a kill lost committed progress: step {step} < {last_step}"
        last_step = step
        steps_seen.append(step)
        if step == EPOCHS * STEPS_PER_EPOCH:  # this round ran to the end: check it, start another
            assert same(s, ref), f"round {rounds}: finished run differs from the uninterrupted run"
            rounds += 1
            os.remove(out)
            last_step = 0
p = k.run(*args(out, resume=os.path.exists(out)))
assert same(state(out), ref), "run resumed after 20 kills differs from the uninterrupted run"
stale = [n for n in os.listdir(k.work) if n.startswith("killed.h5.") and n != "killed.h5.tmp"]
assert not stale or stale == ["killed.h5.lock"], stale
print(f"20 SIGKILLs in {launches} launches ({rounds} earlier rounds ran to the end), checkpoints "
      f"at steps {sorted(set(steps_seen))[:6]}...{max(steps_seen, default=0)}: every resume "
      f"started, final weights bit-identical")


# --- SIGINT / SIGTERM: stop after the step, checkpoint, exit 128 + signal -----------------------
# Long epochs (1024 steps) on their own data, so that a signal lands inside an epoch rather
# than during the checkpoint written at its end, which takes longer than a short epoch here.
N_LONG, EPOCHS_LONG = 16384, 3
STEPS_LONG = N_LONG // B
xl, yl = clusters(N_LONG, D, C, seed=4, spread=2.0)
write_dataset(P("long.h5"), xl, yl, C)


def args_long(out, resume=False):
    a = ["train", "--data", P("long.h5"), "--out", out, "--epochs", EPOCHS_LONG, "--quiet",
         "--log", out + ".jsonl"]
    if resume:
        return [*a, "--resume", out]
    return [*a, "--model", P("student.json"), "--batch", B, "--seed", 7, "--lr", 0.003]


t0 = time.monotonic()
k.run(*args_long(P("ref-long.h5")))
# the signal comes within the first half of the second epoch, timed from this run's epochs
# (a fixed delay missed whole epochs once steps got faster)
t_epoch_long = (time.monotonic() - t0) / EPOCHS_LONG
ref_long = state(P("ref-long.h5"))


def interrupt(sig, code, name):
    out = P(f"{name}.h5")
    for attempt in range(10):
        for f in (out, out + ".tmp"):
            if os.path.exists(f):
                os.remove(f)
        p = start(args_long(out))
        deadline = time.monotonic() + 120
        while not os.path.exists(out) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # the first epoch's checkpoint: the run is training
        time.sleep(rng.uniform(0, 0.5 * t_epoch_long))
        p.send_signal(sig)
        _, err = p.communicate()
        if p.returncode == 0:
            continue  # finished before the signal arrived: try again
        assert p.returncode == code, f"{name}: exit {p.returncode}, expected {code}: {err}"
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"kdcl: {name}: stopped after step "), err
        assert f"wrote {out}" in lines[0] and f"--resume {out}" in lines[0], lines[0]
        said = int(re.search(r"after step (\d+)", lines[0]).group(1))
        step, epoch, cursor = step_of(out)
        assert step == said, f"{name}: the line says step {said}, the checkpoint holds {step}"
        assert (epoch, cursor) == (step // STEPS_LONG, step % STEPS_LONG * B), (step, epoch, cursor)
        assert not os.path.exists(out + ".tmp") and not os.path.exists(out + ".lock")
        k.run(*args_long(out, resume=True))
        assert same(state(out), ref_long), f"{name}: resumed run differs from the uninterrupted run"
        # the interrupted epoch's record equals the uninterrupted run's (its loss sums so far
        # travel in the checkpoint); the later record of an epoch is the one that counts
        def epochs_of(log):
            recs = [json.loads(l) for l in open(log)]
            return {r["epoch"]: r["train_loss"] for r in recs if r["event"] == "epoch"}
        want, got = epochs_of(P("ref-long.h5.jsonl")), epochs_of(out + ".jsonl")
        assert want.keys() == got.keys(), (want, got)
        for e in want:
            assert abs(got[e] - want[e]) <= 1e-12 * abs(want[e]), (name, e, got[e], want[e])
        print(f"{name} at step {step} (epoch {epoch}, cursor {cursor}): exit {code}, one line, "
              f"resume bit-identical")
        if cursor:
            return
    raise AssertionError(f"{name}: no stop inside an epoch in 10 attempts")


interrupt(signal.SIGINT, 130, "SIGINT")
interrupt(signal.SIGTERM, 143, "SIGTERM")

# A second SIGINT exits at once; whatever --out holds is still a whole checkpoint.
out = P("twice.h5")
p = start(args(out))
while not os.path.exists(out) and p.poll() is None:
    time.sleep(0.005)
p.send_signal(signal.SIGINT)
p.send_signal(signal.SIGINT)
p.communicate()
assert p.returncode in (130, -signal.SIGINT), p.returncode
state(out)
print(f"two SIGINTs: exit {p.returncode}, {os.path.basename(out)} whole")

# --- one writer per checkpoint path ------------------------------------------------------------
out = P("locked.h5")
p = start(args(out))
while not os.path.exists(out) and p.poll() is None:
    time.sleep(0.005)
assert p.poll() is None, "the first run ended too early for the lock test"
line = k.fails(*args(out), mentions=["--out", out, "another process", str(p.pid)])
print("second writer refused:", line)
# --no-file-locking (and HDF5_USE_FILE_LOCKING=FALSE) turn the lock off, the caller's choice: a
# second run then gets past it (here to fail on its --model, before writing anything).
for flags, env in ((["--no-file-locking"], None),
                   ([], dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE"))):
    q = subprocess.run([k.binary, "distill", "--model", P("missing.json"), "--data", P("data.h5"),
                        "--out", out, "--quiet", *flags], env=env, capture_output=True, text=True)
    assert q.returncode == 1 and "missing.json" in q.stderr and "another" not in q.stderr, q.stderr
p.send_signal(signal.SIGINT)
_, err = p.communicate()
assert p.returncode == 130, err
assert not os.path.exists(out + ".lock"), "the lock file outlived its run"
state(out)
# Every command takes --no-file-locking, and reads and writes with it.
k.run("distill", "--model", P("student.json"), "--data", P("data.h5"), "--out", P("nolock.h5"),
      "--epochs", 1, "--quiet", "--no-file-locking")
k.run("eval", "--checkpoint", P("nolock.h5"), "--data", P("data.h5"), "--no-file-locking")
k.run("inspect", P("nolock.h5"), "--no-file-locking")
print("--no-file-locking and HDF5_USE_FILE_LOCKING=FALSE: not refused; first run stopped cleanly")
print("all kill/interrupt checks passed")
