#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/: small valid model
# specs, datasets (h5py-written and kdcl-written, dense and top-k teachers) and checkpoints
# (AdamW and SGD, an MLP and a CNN with batch norm). Usage: make_corpus.sh KDCL_BINARY
# (the corpora are committed; rerun this after a format change).
set -euo pipefail
kdcl=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KDCL_SOURCE_DIR=$(cd "$here/../.." && pwd)
"${KDCL_PYTHON:-/usr/bin/python3}" - "$kdcl" "$here/corpus" "$work" <<'PY'
import json, os, shutil, subprocess, sys
import h5py, numpy as np
kdcl, corpus, work = sys.argv[1:]
W = lambda n: os.path.join(work, n)
for t in ("model_spec", "dataset", "checkpoint"):
    shutil.rmtree(os.path.join(corpus, t), ignore_errors=True)
    os.makedirs(os.path.join(corpus, t))
C = lambda t, n: os.path.join(corpus, t, n)

mlp = {"name": "mlp", "input": [6], "layers": [{"type": "dense", "units": 5}, {"type": "relu"},
       {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 3}]}
cnn = {"name": "cnn", "input": [1, 6, 6], "layers": [
    {"type": "conv2d", "filters": 2, "kernel": 3, "padding": 1}, {"type": "batchnorm2d"},
    {"type": "relu"}, {"type": "maxpool2d", "size": 2},
    {"type": "residual", "layers": [{"type": "conv2d", "filters": 2, "kernel": [3, 3],
                                     "padding": 1, "bias": False}, {"type": "gelu"}]},
    {"type": "avgpool2d", "size": 2, "stride": 1}, {"type": "global_avgpool"}, {"type": "flatten"},
    {"type": "dense", "units": 4, "bias": False}, {"type": "batchnorm1d", "momentum": 0.2},
    {"type": "tanh"}, {"type": "dense", "units": 3}, {"type": "sigmoid"}]}
proj = {"name": "proj", "input": [2, 4, 4], "layers": [
    {"type": "residual", "projection": True, "layers": [
        {"type": "conv2d", "filters": 3, "kernel": 3, "stride": 2, "padding": 1}]},
    {"type": "flatten"}, {"type": "dense", "units": 2}]}
for name, spec in (("mlp", mlp), ("cnn", cnn), ("proj", proj)):
    json.dump(spec, open(C("model_spec", name + ".json"), "w"))
for f in sorted(os.listdir(os.path.join(os.environ["KDCL_SOURCE_DIR"], "models"))):
    if f.endswith(".json"):
        shutil.copy(os.path.join(os.environ["KDCL_SOURCE_DIR"], "models", f), C("model_spec", f))

rng = np.random.default_rng(0)
def dataset(path, x, y, classes, teacher=None, **attrs):
    with h5py.File(path, "w", libver="earliest") as f:
        f.attrs["format"] = "kdcl-dataset"
        f.attrs["format_version"] = np.array([1, 0], np.int32)
        d = f.create_dataset("inputs/x", data=x, **attrs)
        d.attrs["scale"] = np.float32(1 / 255 if x.dtype == np.uint8 else 1)
        d.attrs["layout"] = "CHW" if x.ndim == 4 else "flat"
        l = f.create_dataset("labels/y", data=y.astype(np.int32))
        l.attrs["num_classes"] = np.int32(classes)
        if teacher is not None:
            g = f.create_group("teacher")
            g.attrs["teacher_id"] = "seed"
            g.attrs["num_classes"] = np.int32(classes)
            if isinstance(teacher, tuple):
                g.attrs["kind"] = "topk"
                g.attrs["k"] = np.int32(teacher[0].shape[1])
                g.create_dataset("topk_idx", data=teacher[0])
                g.create_dataset("topk_logp", data=teacher[1])
            else:
                g.attrs["kind"] = "logits"
                g.attrs["k"] = np.int32(classes)
                g.create_dataset("logits", data=teacher)
n = 8
xf = rng.standard_normal((n, 6)).astype(np.float32)
y = rng.integers(0, 3, n)
dataset(C("dataset", "flat.h5"), xf, y, 3)
dataset(C("dataset", "logits.h5"), xf, y, 3, rng.standard_normal((n, 3)).astype(np.float32))
idx = np.tile(np.array([2, 0], np.int32), (n, 1))
logp = np.log(np.tile(np.array([0.7, 0.2], np.float32), (n, 1)))
dataset(C("dataset", "topk.h5"), xf, y, 3, (idx, logp))
xu = rng.integers(0, 256, (n, 1, 6, 6)).astype(np.uint8)
dataset(C("dataset", "u8_chunked.h5"), xu, y, 3, chunks=(4, 1, 6, 6), compression="gzip",
        shuffle=True)

def run(*a):
    subprocess.run([kdcl, *map(str, a)], check=True, capture_output=True)
dataset(W("train.h5"), xf, y, 3)
json.dump(mlp, open(W("mlp.json"), "w"))
json.dump(cnn, open(W("cnn.json"), "w"))
dataset(W("img.h5"), xu, y, 3)
run("train", "--model", W("mlp.json"), "--data", W("train.h5"), "--out", C("checkpoint", "mlp_adamw.h5"),
    "--epochs", 1, "--batch", 4, "--quiet")
run("train", "--model", W("mlp.json"), "--data", W("train.h5"), "--out", C("checkpoint", "mlp_sgd.h5"),
    "--epochs", 1, "--batch", 4, "--optimizer", "sgd", "--momentum", 0.9, "--checkpoint-every", 1,
    "--quiet")
run("train", "--model", W("cnn.json"), "--data", W("img.h5"), "--out", C("checkpoint", "cnn_bn.h5"),
    "--epochs", 1, "--batch", 4, "--quiet")
run("label", "--teacher", C("checkpoint", "mlp_adamw.h5"), "--data", W("train.h5"),
    "--out", C("dataset", "kdcl_labelled.h5"))
run("label", "--teacher", C("checkpoint", "mlp_adamw.h5"), "--data", W("train.h5"), "--topk", 2,
    "--out", C("dataset", "kdcl_topk.h5"))
for t in ("model_spec", "dataset", "checkpoint"):
    files = sorted(os.listdir(os.path.join(corpus, t)))
    print(t, len(files), "files,", sum(os.path.getsize(C(t, f)) for f in files), "bytes")
PY
