"""Interop: checkpoints into PyTorch, safetensors and ONNX; teachers from PyTorch; the README's
python blocks executed. Needs .venv (scripts/setup.sh): missing packages fail, never skip."""
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import h5py
import numpy as np
import onnxruntime as ort
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file as load_torch

from common import SOURCE_DIR, Kdcl, clusters, write_dataset, write_spec
from kdcl_torch import KdclModel, dataset_inputs, torch_logits

torch.set_num_threads(1)
k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path
SCRIPTS = os.path.join(SOURCE_DIR, "scripts")
TOL = 1e-4
ort_opts = ort.SessionOptions()
ort_opts.log_severity_level = 3
ort_opts.intra_op_num_threads = 1


def script(name, *args, expect=0):
    p = subprocess.run([sys.executable, os.path.join(SCRIPTS, name), *map(str, args)],
                       capture_output=True, text=True)
    if p.returncode != expect:
        raise AssertionError(f"{name} {' '.join(map(str, args))}: exit {p.returncode}, expected "
                             f"{expect}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def reported_diff(p):
    m = re.search(r"max \|diff\| ([0-9.e+-]+)", p.stdout)
    assert m, p.stdout
    return float(m.group(1))


def predict(ckpt, data):
    k.run("predict", "--checkpoint", ckpt, "--data", data, "--out", P("logits.h5"))
    with h5py.File(P("logits.h5"), "r") as f:
        return f["logits"][...]


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def eval_json(ckpt, data):
    return json.loads(k.run("eval", "--checkpoint", ckpt, "--data", data, "--json").stdout)


# --- data and two models: an MLP and a CNN, covering every layer type ------------------------
x, y = clusters(400, 12, 4, seed=1, spread=1.5)
write_dataset(P("mlp-train.h5"), x, y, 4, scale=0.5, mean=0.1, std=2.0)
x, y = clusters(150, 12, 4, seed=2, spread=1.5)
write_dataset(P("mlp-test.h5"), x, y, 4, scale=0.5, mean=0.1, std=2.0)


def images(n, seed):
    """1x10x9 images: class 0 horizontal bar, 1 vertical bar, 2 noise only."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n).astype(np.int32)
    x = rng.integers(0, 60, size=(n, 1, 10, 9)).astype(np.uint8)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, rng.integers(0, 10), :] = 255
        elif y[i] == 1:
            x[i, 0, :, rng.integers(0, 9)] = 255
    return x, y


x, y = images(240, 5)
write_dataset(P("cnn-train.h5"), x, y, 3, scale=1 / 255, mean=0.2, std=0.3)
x, y = images(90, 6)
write_dataset(P("cnn-test.h5"), x, y, 3, scale=1 / 255, mean=0.2, std=0.3)

specs = {
    "mlp": {"name": "interop-mlp", "input": [12], "layers": [
        {"type": "dense", "units": 24}, {"type": "batchnorm1d"}, {"type": "gelu"},
        {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 16}, {"type": "sigmoid"},
        {"type": "dense", "units": 4}]},
    "cnn": {"name": "interop-cnn", "input": [1, 10, 9], "layers": [
        {"type": "conv2d", "filters": 4, "kernel": 3, "padding": 1},
        {"type": "batchnorm2d"}, {"type": "relu"},
        {"type": "maxpool2d", "size": 2},
        {"type": "residual", "projection": True, "layers": [
            {"type": "conv2d", "filters": 6, "kernel": 3, "stride": 2, "padding": 1, "bias": False},
            {"type": "batchnorm2d"}, {"type": "relu"}]},
        {"type": "avgpool2d", "size": 2, "stride": 1},
        {"type": "residual", "layers": [{"type": "conv2d", "filters": 6, "kernel": 1},
                                        {"type": "tanh"}]},
        {"type": "global_avgpool"},
        {"type": "dense", "units": 3}]},
}
for name, spec in specs.items():
    write_spec(P(f"{name}.json"), spec)
k.run("train", "--model", P("mlp.json"), "--data", P("mlp-train.h5"), "--out", P("mlp.h5"),
      "--epochs", 4, "--batch", 64, "--lr", 0.01, "--quiet")
k.run("train", "--model", P("cnn.json"), "--data", P("cnn-train.h5"), "--out", P("cnn.h5"),
      "--epochs", 3, "--batch", 32, "--lr", 0.01, "--quiet")

# --- each checkpoint through PyTorch, safetensors and onnxruntime -----------------------------
summary = []
for name in ("mlp", "cnn"):
    ckpt, test = P(f"{name}.h5"), P(f"{name}-test.h5")
    ref = predict(ckpt, test)

    # PyTorch: kdcl_torch.py --check runs predict and the twin itself
    d_torch = reported_diff(script("kdcl_torch.py", ckpt, "--check", test, "--kdcl", k.binary))
    assert d_torch < TOL, (name, d_torch)
    p = script("kdcl_torch.py", ckpt, "--check", test, "--kdcl", k.binary, "--tol", -1, expect=1)
    assert "FAIL" in p.stdout, p.stdout

    # safetensors: the file's layout, every tensor bit for bit, the metadata, then the logits
    st = P(f"{name}.safetensors")
    k.run("export", "--checkpoint", ckpt, "--format", "safetensors", "--out", st)
    assert not os.path.exists(st + ".tmp")
    raw = open(st, "rb").read()
    hlen = struct.unpack("<Q", raw[:8])[0]
    assert hlen % 8 == 0 and raw[8:8 + hlen].rstrip(b" ").endswith(b"}"), raw[:64]
    header = json.loads(raw[8:8 + hlen])
    spans = sorted(v["data_offsets"] for key, v in header.items() if key != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - hlen, spans[-1]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "holes or overlaps"
    tensors = load_numpy(st)
    with h5py.File(ckpt, "r") as f:
        model = {key: d[...] for key, d in f["model"].items()}
        ckpt_spec = json.loads(f["meta/model_config"][()])
    assert set(tensors) == set(model), (set(tensors) ^ set(model))
    for key, want in model.items():
        got = tensors[key]
        assert got.dtype == want.dtype and got.shape == want.shape, (key, got.dtype, want.dtype)
        assert np.array_equal(got, want), key
        dtype = header[key]["dtype"]
        assert dtype == ("I64" if key.endswith("num_batches_tracked") else "F32"), (key, dtype)
    with safe_open(st, "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "kdcl" and json.loads(meta["model_config"]) == ckpt_spec, meta
    assert json.loads(meta["train_config"])["epochs"] in (3, 4), meta["train_config"]
    twin = KdclModel(json.loads(meta["model_config"]))
    twin.load_state_dict(load_torch(st))  # strict: every key and shape
    d_st = float(np.abs(torch_logits(twin.eval(), test) - ref).max())
    assert d_st < TOL, (name, d_st)

    # ONNX: kdcl_onnx.py --check, then onnxruntime here on an odd batch (the axis is dynamic)
    onnx = P(f"{name}.onnx")
    d_onnx = reported_diff(script("kdcl_onnx.py", ckpt, "--out", onnx, "--check", test,
                                  "--kdcl", k.binary))
    assert d_onnx < TOL, (name, d_onnx)
    sess = ort.InferenceSession(onnx, ort_opts, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].name == "input" and sess.get_outputs()[0].name == "logits"
    xs = dataset_inputs(test).numpy()[:7]
    out = sess.run(["logits"], {"input": xs.reshape(7, *specs[name]["input"])})[0]
    d_ort7 = float(np.abs(out - ref[:7]).max())
    assert out.shape == (7, ref.shape[1]) and d_ort7 < TOL, (out.shape, d_ort7)
    summary.append(f"{name}: max |diff| vs kdcl predict over {ref.shape[0]} rows: PyTorch "
                   f"{d_torch:.2e}, safetensors {d_st:.2e}, onnxruntime {d_onnx:.2e}")
print("\n".join(summary))

# --- kdcl export refuses what it cannot do, leaving outputs alone ------------------------------
with open(P("keep.st"), "wb") as f:
    f.write(b"keep")
before = digest(P("keep.st"))
k.fails("export", "--checkpoint", P("mlp-train.h5"), "--out", P("keep.st"),
        mentions=["mlp-train.h5", "kdcl-checkpoint"])
k.fails("export", "--checkpoint", P("missing.h5"), "--out", P("keep.st"),
        mentions=["missing.h5", "no such file"])
k.fails("export", "--checkpoint", P("mlp.h5"), "--format", "onnx", "--out", P("keep.st"), code=2,
        mentions=["--format", "onnx", "kdcl_onnx.py"])
k.fails("export", "--checkpoint", P("mlp.h5"), "--out", P("no-dir/x.st"),
        mentions=["no-dir", "does not exist"])
k.fails("export", "--checkpoint", P("mlp.h5"), "--out", P("mlp.h5"), mentions=["same file"])
k.fails("export", "--checkpoint", P("mlp.h5"), code=2, mentions=["--out"])
assert digest(P("keep.st")) == before and not os.path.exists(P("keep.st.tmp"))
assert eval_json(P("mlp.h5"), P("mlp-test.h5"))["rows"] == 150  # the checkpoint still reads
print("kdcl export: bad checkpoint, format, output directory and out == checkpoint refused")

# --- a PyTorch teacher (TorchScript) written by teacher_logits_torch.py distils a student -----
torch.manual_seed(0)
teacher = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
xt = dataset_inputs(P("mlp-train.h5"))
with h5py.File(P("mlp-train.h5"), "r") as f:
    yt = torch.from_numpy(f["labels/y"][...]).long()
opt = torch.optim.Adam(teacher.parameters(), lr=0.02)
for _ in range(150):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(teacher(xt), yt).backward()
    opt.step()
teacher.eval()
torch.jit.script(teacher).save(P("teacher.pt"))
data_digest = digest(P("mlp-train.h5"))
script("teacher_logits_torch.py", "--model", P("teacher.pt"), "--data", P("mlp-train.h5"),
       "--out", P("train-dense.h5"), "--batch", 100)
script("teacher_logits_torch.py", "--model", P("teacher.pt"), "--data", P("mlp-train.h5"),
       "--out", P("train-topk.h5"), "--topk", 2, "--teacher-id", "scripted")
assert digest(P("mlp-train.h5")) == data_digest  # --out leaves the dataset alone
with torch.no_grad():
    zt = teacher(xt)
logp = torch.log_softmax(zt.double(), 1)
with h5py.File(P("train-dense.h5"), "r") as f:
    g = f["teacher"]
    assert g.attrs["kind"] == "logits" and int(g.attrs["num_classes"]) == 4
    assert np.abs(g["logits"][...] - zt.numpy()).max() < 1e-5
    assert g["logits"].dtype == np.float32 and f["inputs/x"].shape == (400, 12)
with h5py.File(P("train-topk.h5"), "r") as f:
    g = f["teacher"]
    assert g.attrs["kind"] == "topk" and int(g.attrs["k"]) == 2 and g.attrs["teacher_id"] == "scripted"
    idx, lp = g["topk_idx"][...], g["topk_logp"][...]
    assert idx.dtype == np.int32 and lp.dtype == np.float32
    want_lp, want_idx = torch.topk(logp, 2, dim=1)
    assert np.abs(lp - want_lp.numpy()).max() < 1e-5 and (np.diff(lp, axis=1) <= 0).all()
    assert (idx == want_idx.numpy()).mean() > 0.99  # ties may order differently
# the test set labelled in place (no --out): a copy with /teacher renamed over it
shutil.copyfile(P("mlp-test.h5"), P("test-t.h5"))
script("teacher_logits_torch.py", "--model", P("teacher.pt"), "--data", P("test-t.h5"))
assert not os.path.exists(P("test-t.h5.tmp"))
student = {"name": "student", "input": [12],
           "layers": [{"type": "dense", "units": 8}, {"type": "relu"}, {"type": "dense", "units": 4}]}
write_spec(P("student.json"), student)
results = {}
for kind, data, extra in (("dense", "train-dense.h5", []),
                          ("topk", "train-topk.h5", ["--topk-missing", "drop"])):
    k.run("distill", "--model", P("student.json"), "--data", P(data), "--out", P(f"st-{kind}.h5"),
          "--epochs", 6, "--batch", 64, "--lr", 0.02, "--temperature", 2, "--alpha", 0.3,
          *extra, "--quiet")
    ev = eval_json(P(f"st-{kind}.h5"), P("test-t.h5"))
    assert ev["accuracy"] > 0.9 and ev["teacher_agreement"] > 0.9, (kind, ev)
    results[kind] = ev
print("teacher_logits_torch.py (TorchScript) -> kdcl distill: test accuracy / teacher agreement "
      + ", ".join(f"{kd} {e['accuracy']:.3f}/{e['teacher_agreement']:.3f}"
                  for kd, e in results.items()))

# a kdcl checkpoint as the teacher gives kdcl predict's logits
script("teacher_logits_torch.py", "--model", P("cnn.h5"), "--data", P("cnn-test.h5"),
       "--out", P("cnn-test-t.h5"))
with h5py.File(P("cnn-test-t.h5"), "r") as f:
    d = float(np.abs(f["teacher/logits"][...] - predict(P("cnn.h5"), P("cnn-test.h5"))).max())
assert d < TOL, d
k.run("inspect", P("cnn-test-t.h5"))
# a model whose outputs do not fit fails and leaves the dataset as it was
torch.jit.script(torch.nn.Linear(12, 3)).save(P("wrong.pt"))
before = digest(P("test-t.h5"))
p = script("teacher_logits_torch.py", "--model", P("wrong.pt"), "--data", P("test-t.h5"), expect=1)
assert "[" in p.stderr and "4]" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
assert digest(P("test-t.h5")) == before and not os.path.exists(P("test-t.h5.tmp"))
print(f"teacher_logits_torch.py: a kdcl checkpoint as teacher matches kdcl predict "
      f"(max |diff| {d:.2e}); misfit outputs refused, dataset untouched")

# --- the README's python blocks, run in order, and what they wrote trains -----------------------
readme = open(os.path.join(SOURCE_DIR, "README.md")).read()
blocks = re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
assert len(blocks) >= 5, f"README.md: expected the interop python blocks, found {len(blocks)}"
rd = P("readme")
os.makedirs(rd)
os.symlink(SCRIPTS, os.path.join(rd, "scripts"))
shutil.copyfile(P("mlp.h5"), os.path.join(rd, "ckpt.h5"))
shutil.copyfile(P("mlp.safetensors"), os.path.join(rd, "model.safetensors"))
shutil.copyfile(P("mlp.onnx"), os.path.join(rd, "model.onnx"))
for i, code in enumerate(blocks):
    p = subprocess.run([sys.executable, "-c", code], cwd=rd, capture_output=True, text=True)
    assert p.returncode == 0, f"README.md python block {i + 1} failed:\n{code}\n{p.stderr}"
R = lambda name: os.path.join(rd, name)  # noqa: E731
for c in (2, 3):
    write_spec(R(f"spec{c}.json"), {"name": f"readme-{c}", "input": [16], "layers": [
        {"type": "dense", "units": 16}, {"type": "relu"}, {"type": "dense", "units": c}]})
common = ["--epochs", 15, "--batch", 64, "--lr", 0.01, "--quiet"]
k.run("train", "--model", R("spec2.json"), "--data", R("mine.h5"), "--out", R("trained.h5"), *common)
acc_train = eval_json(R("trained.h5"), R("mine.h5"))["accuracy"]
k.run("distill", "--model", R("spec2.json"), "--data", R("mine.h5"), "--out", R("dense.h5"),
      "--temperature", 2, "--alpha", 0.3, *common)
ev_dense = eval_json(R("dense.h5"), R("mine.h5"))
k.run("distill", "--model", R("spec3.json"), "--data", R("mine-topk.h5"), "--out", R("topk.h5"),
      "--topk-missing", "drop", *common)
ev_topk = eval_json(R("topk.h5"), R("mine-topk.h5"))
assert acc_train > 0.9 and ev_dense["accuracy"] > 0.9 and ev_topk["accuracy"] > 0.8, \
    (acc_train, ev_dense, ev_topk)
print(f"README: {len(blocks)} python blocks ran; their data trains (accuracy {acc_train:.3f}) and "
      f"distils (dense teacher {ev_dense['accuracy']:.3f}, top-k teacher {ev_topk['accuracy']:.3f})")
