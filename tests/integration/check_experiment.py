"""Recipes (--config), run directories (--run-dir, --keep, --force, --resume DIR), and the
figures and report made from them."""
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np

from common import Kdcl, clusters, read_model, write_dataset, write_spec

k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path

# --- a small distillation problem: data with a teacher, a student spec -----------------------
x, y = clusters(1200, 16, 4, seed=1)
xv, yv = clusters(300, 16, 4, seed=2)
write_dataset(P("train.h5"), x, y, 4)
write_dataset(P("val.h5"), xv, yv, 4)
student = {"name": "clusters-student", "input": [16],
           "layers": [{"type": "dense", "units": 16}, {"type": "relu"},
                      {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 4}]}
write_spec(P("student.json"), student)
k.run("train", "--model", P("student.json"), "--data", P("train.h5"), "--out", P("teacher.h5"),
      "--epochs", 2, "--quiet")
for name in ("train", "val"):
    k.run("label", "--teacher", P("teacher.h5"), "--data", P(f"{name}.h5"),
          "--out", P(f"{name}-t.h5"))


def write_recipe(name, recipe):
    with open(P(name), "w") as f:
        json.dump(recipe, f)
    return P(name)


def same_weights(a, b):
    ma, mb = read_model(a), read_model(b)
    return ma.keys() == mb.keys() and all(np.array_equal(ma[n], mb[n]) for n in ma)


def tree_digest(d):
    """sha256 of every file under d, by relative path: 'nothing was touched'."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            path = os.path.join(root, f)
            out[os.path.relpath(path, d)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


base = {"model": P("student.json"), "data": P("train-t.h5"), "val": P("val-t.h5"),
        "loss": "kd", "temperature": 2, "alpha": 0.3, "epochs": 3, "batch": 64,
        "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "lr_schedule": "step",
        "lr-step-epochs": 2, "seed": 7, "no-shuffle": False}
recipe = write_recipe("recipe.json", base)

# --- a recipe plus one overriding flag equals the same settings all as flags ------------------
k.run("distill", "--config", recipe, "--lr", 0.02, "--out", P("from-recipe.h5"), "--quiet")
k.run("distill", "--model", P("student.json"), "--data", P("train-t.h5"), "--val", P("val-t.h5"),
      "--loss", "kd", "--temperature", 2, "--alpha", 0.3, "--epochs", 3, "--batch", 64,
      "--optimizer", "sgd", "--lr", 0.02, "--momentum", 0.9, "--lr-schedule", "step",
      "--lr-step-epochs", 2, "--seed", 7, "--out", P("from-flags.h5"), "--quiet")
assert same_weights(P("from-recipe.h5"), P("from-flags.h5")), "recipe + --lr != all flags"
k.run("distill", "--config", recipe, "--out", P("lr-from-recipe.h5"), "--quiet")
assert not same_weights(P("from-recipe.h5"), P("lr-from-recipe.h5")), "--lr did not override"
with h5py.File(P("from-recipe.h5")) as f:
    text = f["meta/train_config"][()]
    cfg = json.loads(text.decode() if isinstance(text, bytes) else text)
assert abs(cfg["lr"] - 0.02) < 1e-7 and cfg["optimizer"] == "sgd" and abs(cfg["alpha"] - 0.3) < 1e-7
# the spec inline instead of a path gives the same run
write_recipe("inline.json", dict(base, model=student, lr=0.02))
k.run("distill", "--config", P("inline.json"), "--out", P("inline.h5"), "--quiet")
assert same_weights(P("from-recipe.h5"), P("inline.h5")), "inline spec != spec file"
print("recipe: recipe + --lr override and inline spec give the all-flags weights bit for bit")

# --- bad recipes: one error line naming the key, nothing written ------------------------------
k.run("distill", "--config", recipe, "--out", P("keep.h5"), "--epochs", 1, "--quiet")
before = hashlib.sha256(open(P("keep.h5"), "rb").read()).hexdigest()
bad = [
    ({"learning_rate": 0.1}, 1, ["'learning_rate'", "unknown key"]),
    ({"temprature": 2}, 1, ["'temprature'", "unknown key"]),
    ({"lr": "fast"}, 1, ["'lr'", "must be a number"]),
    ({"epochs": True}, 1, ["'epochs'", "must be a number"]),
    ({"no-shuffle": 1}, 1, ["'no-shuffle'", "true or false"]),
    ({"betas": [0.9]}, 1, ["'betas'", "two numbers"]),
    ({"model": 5}, 1, ["'model'", "object"]),
    ({"loss": ["kd"]}, 1, ["'loss'", "must be a string"]),
    ({"config": "other.json"}, 1, ["'config'"]),
    ({"lr": -1}, 2, ["--lr"]),
    ({"loss": "kl"}, 2, ["--loss", "'kl'"]),
    ({"alpha": 1.5}, 2, ["--alpha"]),
]
for i, (change, code, mentions) in enumerate(bad):
    path = write_recipe(f"bad{i}.json", dict(base, **change))
    k.fails("distill", "--config", path, "--out", P("keep.h5"), "--quiet", code=code,
            mentions=mentions)
with open(P("syntax.json"), "w") as f:
    f.write('{"lr": 0.1,, "epochs": 2}')
k.fails("distill", "--config", P("syntax.json"), "--out", P("keep.h5"),
        mentions=["syntax.json", "not valid JSON"])
with open(P("twice.json"), "w") as f:
    f.write('{"lr": 0.1, "lr": 0.2}')
k.fails("distill", "--config", P("twice.json"), "--out", P("keep.h5"), mentions=["'lr'", "twice"])
with open(P("array.json"), "w") as f:
    f.write('[1, 2]')
k.fails("distill", "--config", P("array.json"), "--out", P("keep.h5"), mentions=["JSON object"])
k.fails("distill", "--config", P("missing.json"), "--out", P("keep.h5"), mentions=["missing.json"])
k.fails("distill", "--out", P("keep.h5"), "--config", code=1, mentions=["--config"])
k.fails("train", "--config", recipe, "--out", P("keep.h5"), code=2,
        mentions=["belongs to 'kdcl distill'"])
assert hashlib.sha256(open(P("keep.h5"), "rb").read()).hexdigest() == before
print(f"recipe: {len(bad) + 6} bad recipes refused with one line, checkpoint untouched")

# --- a run directory: layout, best by validation accuracy, --keep rotation --------------------
run_a = P("runs/a")
k.run("distill", "--config", recipe, "--run-dir", run_a, "--keep", 2, "--epochs", 4, "--quiet")
files = sorted(os.path.relpath(os.path.join(r, f), run_a)
               for r, _, fs in os.walk(run_a) for f in fs)
assert files == ["checkpoints/best.h5", "checkpoints/best.json", "checkpoints/epoch-0003.h5",
                 "checkpoints/epoch-0004.h5", "checkpoints/latest.h5", "eval.json",
                 "metrics.jsonl", "recipe.json"], files
records = [json.loads(l) for l in open(os.path.join(run_a, "metrics.jsonl"))]
epochs = [r for r in records if r["event"] == "epoch"]
assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
accs = [r["val_accuracy"] for r in epochs]
best_epoch = 1 + int(np.argmax(accs))  # the first of equal maxima, as kdcl keeps it
best = json.load(open(os.path.join(run_a, "checkpoints/best.json")))
assert best["epoch"] == best_epoch and best["val_accuracy"] == max(accs), (best, accs)
with h5py.File(os.path.join(run_a, "checkpoints/best.h5")) as f:
    assert int(f["train/epoch"][()]) == best_epoch
assert same_weights(os.path.join(run_a, "checkpoints/epoch-0004.h5"),
                    os.path.join(run_a, "checkpoints/latest.h5"))
ev = json.load(open(os.path.join(run_a, "eval.json")))
cli = json.loads(k.run("eval", "--checkpoint", os.path.join(run_a, "checkpoints/latest.h5"),
                       "--data", P("val-t.h5"), "--json").stdout)
assert ev["val_accuracy"] == cli["accuracy"] == accs[-1], (ev, cli, accs)
assert ev["epochs"] == 4 and ev["loss"] == "kd" and ev["model"] == "clusters-student"
assert ev["best_val_accuracy"] == max(accs) and "val_teacher_agreement" in ev
saved = json.load(open(os.path.join(run_a, "recipe.json")))
assert saved["model"] == student and saved["lr"] == 0.05 and saved["epochs"] == 4, saved
assert saved["keep"] == 2 and saved["alpha"] == 0.3 and saved["data"] == P("train-t.h5")
print(f"run dir: layout, best epoch {best_epoch} of accuracies {accs}, eval.json = kdcl eval")

# --- the saved recipe reruns the run from another directory -----------------------------------
subprocess.run([k.binary, "distill", "--config", os.path.join(run_a, "recipe.json"),
                "--run-dir", P("runs/rerun"), "--quiet"], check=True, cwd="/")
assert same_weights(os.path.join(run_a, "checkpoints/latest.h5"),
                    P("runs/rerun/checkpoints/latest.h5")), "recipe.json did not rerun the run"

# --- reusing a run directory: refused without --resume/--force, nothing touched ---------------
digest = tree_digest(run_a)
k.fails("distill", "--config", recipe, "--run-dir", run_a, "--quiet",
        mentions=[run_a, "--resume", "--force"])
k.fails("train", "--model", P("student.json"), "--data", P("train.h5"), "--run-dir", run_a,
        mentions=["already holds a run"])
k.fails("distill", "--config", recipe, "--run-dir", run_a, "--out", P("x.h5"), code=2,
        mentions=["--out", "--run-dir"])
k.fails("distill", "--config", recipe, "--run-dir", run_a, "--log", P("x.jsonl"), code=2,
        mentions=["--log", "--run-dir"])
k.fails("distill", "--config", recipe, "--out", P("x.h5"), "--keep", 2, code=2,
        mentions=["--keep", "--run-dir"])
k.fails("distill", "--config", recipe, "--out", P("x.h5"), "--force", code=2,
        mentions=["--force", "--run-dir"])
# --force with a run that fails its checks leaves the old run as it was
write_dataset(P("wrong.h5"), np.zeros((10, 8), np.float32), np.zeros(10, np.int32), 4)
k.fails("distill", "--config", recipe, "--data", P("wrong.h5"), "--run-dir", run_a, "--force",
        mentions=["wrong.h5"])
with open(P("not-a-dir"), "w") as f:
    f.write("x")
k.fails("distill", "--config", recipe, "--run-dir", P("not-a-dir"), mentions=["not a directory"])
assert tree_digest(run_a) == digest, "a refused run changed the run directory"
print("run dir: reuse without --resume/--force refused, run untouched")

# --- --force replaces the run ----------------------------------------------------------------
k.run("distill", "--config", recipe, "--run-dir", run_a, "--force", "--epochs", 2, "--quiet")
files = sorted(os.path.relpath(os.path.join(r, f), run_a)
               for r, _, fs in os.walk(run_a) for f in fs)
assert "checkpoints/epoch-0003.h5" not in files and "checkpoints/latest.h5" in files, files
records = [json.loads(l) for l in open(os.path.join(run_a, "metrics.jsonl"))]
assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
assert json.load(open(os.path.join(run_a, "recipe.json")))["epochs"] == 2

# --- --resume DIR continues from the run directory alone, bit for bit ------------------------
constant = write_recipe("constant.json", dict(base, lr_schedule="constant"))
k.run("distill", "--config", constant, "--run-dir", P("runs/whole"), "--epochs", 4, "--quiet")
k.run("distill", "--config", constant, "--run-dir", P("runs/parts"), "--epochs", 2, "--quiet")
k.run("distill", "--resume", P("runs/parts"), "--epochs", 4, "--quiet")
assert same_weights(P("runs/whole/checkpoints/latest.h5"), P("runs/parts/checkpoints/latest.h5"))
k.fails("distill", "--resume", P("runs/parts"), "--epochs", 5, "--lr", 0.5,
        mentions=["--lr", "--resume"])
records = [json.loads(l) for l in open(P("runs/parts/metrics.jsonl"))]
assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3, 4]
whole = json.load(open(P("runs/whole/eval.json")))
parts = json.load(open(P("runs/parts/eval.json")))
assert whole["val_accuracy"] == parts["val_accuracy"] and parts["epochs"] == 4
# a run started from --init resumes from its directory alone too (the checkpoint, not --init)
k.run("distill", "--config", constant, "--init", P("from-flags.h5"), "--run-dir", P("runs/init"),
      "--epochs", 1, "--quiet")
assert json.load(open(P("runs/init/recipe.json")))["init"] == P("from-flags.h5")
k.run("distill", "--resume", P("runs/init"), "--epochs", 2, "--quiet")
assert json.load(open(P("runs/init/eval.json")))["epochs"] == 2
print("run dir: 2 epochs + --resume DIR to 4 equals 4 epochs bit for bit")


# --- what a run directory accepts ------------------------------------------------------------
# resuming another run into a directory that holds one: refused (only the directory's own run)
k.fails("distill", "--resume", P("runs/whole"), "--run-dir", P("runs/parts"), "--epochs", 5,
        mentions=["already holds a run", "another"])
# a run that stopped before its first checkpoint (recipe.json, metrics.jsonl only) starts over
os.makedirs(P("runs/husk/checkpoints"))
json.dump(base, open(P("runs/husk/recipe.json"), "w"))
open(P("runs/husk/metrics.jsonl"), "w").close()
k.fails("distill", "--resume", P("runs/husk"), mentions=["no checkpoints/latest.h5",
                                                          "without --resume"])
k.run("distill", "--config", recipe, "--run-dir", P("runs/husk"), "--epochs", 1, "--quiet")
assert os.path.exists(P("runs/husk/eval.json"))
# the temporary file a killed write of recipe.json leaves does not make it "not a run"
open(P("runs/husk/recipe.json.tmp.12345"), "w").write("{")
k.run("distill", "--resume", P("runs/husk"), "--epochs", 2, "--quiet")
# a directory of other files is not a run directory, --force or not; nothing in it is touched
os.makedirs(P("mine"))
open(P("mine/eval.json"), "w").write("my own")
open(P("mine/notes.txt"), "w").write("notes")
for extra in ([], ["--force"]):
    k.fails("distill", "--config", recipe, "--run-dir", P("mine"), *extra,
            mentions=["not empty", "no kdcl run"])
assert open(P("mine/eval.json")).read() == "my own" and sorted(os.listdir(P("mine"))) == \
    ["eval.json", "notes.txt"]
# a run that fails its checks leaves no directory behind
k.fails("distill", "--config", recipe, "--val", P("mine"), "--run-dir", P("runs/new/deep"),
        mentions=["mine"])
assert not os.path.exists(P("runs/new/deep"))
# ... nor the parents made for it (runs/ itself holds runs already and stays)
k.fails("distill", "--config", recipe, "--val", P("mine"), "--run-dir",
        P("runs/made/for/it/"), mentions=["mine"])
assert not os.path.exists(P("runs/made")) and os.path.isdir(P("runs"))
k.fails("distill", "--resume", P("runs/none"), code=2, mentions=["runs/none", "no such"])
# run-management keys and aliases given twice are refused in recipes
for change, mentions in (({"force": True}, ["'force'", "command line"]),
                         ({"resume": P("runs/whole")}, ["'resume'", "command line"]),
                         ({"run-dir": P("runs/x")}, ["'run-dir'", "command line"]),
                         ({"lr-schedule": "cosine"}, ["given twice", "lr_schedule"])):
    k.fails("distill", "--config", write_recipe("keys.json", dict(base, **change)), "--out",
            P("keys.h5"), mentions=mentions)
# a flag given twice on the command line, an abbreviated one, an error from the recipe
k.fails("distill", "--config", recipe, "--epochs", 2, "--epochs", 3, "--out", P("x.h5"), code=2,
        mentions=["--epochs", "twice"])
k.fails("distill", "--config", recipe, "--config", constant, "--out", P("x.h5"),
        mentions=["--config", "twice"])
k.fails("distill", "--config", recipe, "--epoch", 2, "--out", P("x.h5"), code=2,
        mentions=["--epoch", "--epochs"])
k.fails("train", "--config", recipe, "--out", P("x.h5"), code=2,
        mentions=["--config " + recipe, "--loss", "distill"])
# a finished run resumed: nothing to train, nothing rewritten; --epochs below what it did: refused
digest = tree_digest(P("runs/whole"))
k.run("distill", "--resume", P("runs/whole"), "--quiet")
assert tree_digest(P("runs/whole")) == digest
k.fails("distill", "--resume", P("runs/whole"), "--epochs", 2, mentions=["--epochs 2", "4 epochs"])
# recipe.json keeps --checkpoint-every and --log-every; a checkpoint resume keeps its --epochs
k.run("distill", "--config", constant, "--run-dir", P("runs/every"), "--epochs", 2,
      "--checkpoint-every", 5, "--log-every", 3, "--quiet")
saved = json.load(open(P("runs/every/recipe.json")))
assert saved["checkpoint-every"] == 5 and saved["log-every"] == 3, saved
k.run("distill", "--config", constant, "--epochs", 2, "--out", P("two.h5"), "--quiet")
k.run("distill", "--data", P("train-t.h5"), "--resume", P("two.h5"), "--out", P("two.h5"),
      "--quiet")
with h5py.File(P("two.h5")) as f:
    assert int(f["train/epoch"][()]) == 2  # not the default --epochs 10
# integers stay exact in recipe.json (a 9-digit seed resumes and reruns); past 2^53 refused
k.run("distill", "--config", constant, "--run-dir", P("runs/seed"), "--epochs", 1,
      "--seed", 123456789, "--warmup-steps", 123456789, "--quiet")
saved = json.load(open(P("runs/seed/recipe.json")))
assert saved["seed"] == 123456789 and saved["warmup-steps"] == 123456789, saved
k.run("distill", "--resume", P("runs/seed"), "--epochs", 2, "--quiet")
k.fails("distill", "--config", constant, "--seed", 2 ** 53, "--out", P("x.h5"), code=2,
        mentions=["--seed"])
# a resumed run keeps its network: another dropout rate is refused, as other units are
edited = json.load(open(P("runs/seed/recipe.json")))
edited["model"]["layers"][2]["rate"] = 0.5
k.fails("distill", "--config", write_recipe("rate.json", edited), "--resume", P("runs/seed"),
        "--epochs", 3, mentions=["does not describe the network"])
for text, mentions in (('{"no-file-locking": true}', ["no-file-locking", "command line"]),
                       ('{"data": "train-t.h5\\u0000x"}', ["NUL"])):
    with open(P("odd.json"), "w") as f:
        f.write(text)
    k.fails("distill", "--config", P("odd.json"), "--out", P("x.h5"), mentions=mentions)
print("run dir: refusals (another run, other files, keys, repeats), husk restart, no-op resume")

# --- figures and the report ------------------------------------------------------------------
py = os.environ.get("KDCL_PYTHON", sys.executable)
out = P("report")
subprocess.run([py, os.path.join(os.environ["KDCL_SOURCE_DIR"], "scripts/report.py"),
                P("runs/whole"), P("runs/parts"), run_a, "--out", out], check=True,
               capture_output=True)
report = open(os.path.join(out, "report.md")).read()
for name in ("whole", "parts", "| a |", "loss.png", "val_accuracy.png", "lr.png"):
    assert name in report, f"{name} missing from the report:\n{report}"
row = [l for l in report.splitlines() if l.startswith("| whole |")][0]
assert f"{100 * whole['val_accuracy']:.2f}" in row and "clusters-student" in row, row
for png in ("loss.png", "val_accuracy.png", "lr.png", "samples_per_s.png"):
    with open(os.path.join(out, png), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", png
p = subprocess.run([py, os.path.join(os.environ["KDCL_SOURCE_DIR"], "scripts/plot_run.py"),
                    P("train.h5"), "--out", out], capture_output=True, text=True)
assert p.returncode != 0 and "no metrics.jsonl" in p.stderr, p.stderr
with open(P("runs/parts/eval.json"), "w") as f:
    f.write("[1, 2")
p = subprocess.run([py, os.path.join(os.environ["KDCL_SOURCE_DIR"], "scripts/report.py"),
                    P("runs/parts"), "--out", out], capture_output=True, text=True)
assert p.returncode != 0 and p.stderr.startswith("report.py: error:") and \
    len(p.stderr.strip().splitlines()) == 1, p.stderr
print("report: report.md with the three runs' table rows and four PNG figures")
