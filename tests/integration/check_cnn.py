"""conv2d, pooling, batch norm and residual blocks against PyTorch."""
import json
import sys

import h5py
import numpy as np
import torch

from common import Kdcl, read_model, write_dataset, write_spec
from kdcl_torch import KdclModel, dataset_inputs, load_checkpoint

torch.set_num_threads(1)
k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path

# Images of 1x13x11 (odd sizes on purpose): class 0 horizontal bars, 1 vertical, 2 noise only.
rng = np.random.default_rng(5)
n = 300
y = rng.integers(0, 3, size=n).astype(np.int32)
x = rng.integers(0, 60, size=(n, 1, 13, 11)).astype(np.uint8)
for i in range(n):
    if y[i] == 0:
        x[i, 0, rng.integers(0, 13), :] = 255
    elif y[i] == 1:
        x[i, 0, :, rng.integers(0, 11)] = 255
write_dataset(P("img.h5"), x, y, 3, scale=1 / 255, mean=0.2, std=0.3)

spec = {"name": "cnn-test", "input": [1, 13, 11], "layers": [
    {"type": "conv2d", "filters": 6, "kernel": [3, 2], "padding": 1},
    {"type": "batchnorm2d", "momentum": 0.2},
    {"type": "relu"},
    {"type": "maxpool2d", "size": 3, "stride": 2, "padding": 1},
    {"type": "residual", "projection": True, "layers": [
        {"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2, "padding": 1, "bias": False},
        {"type": "batchnorm2d"}, {"type": "gelu"},
        {"type": "conv2d", "filters": 8, "kernel": 3, "padding": 1}]},
    {"type": "residual", "layers": [
        {"type": "conv2d", "filters": 8, "kernel": 1}, {"type": "tanh"}]},
    {"type": "avgpool2d", "size": 2, "stride": 1},
    {"type": "flatten"},
    {"type": "dense", "units": 16}, {"type": "batchnorm1d"}, {"type": "relu"},
    {"type": "dense", "units": 3}]}
write_spec(P("cnn.json"), spec)
twin = KdclModel(spec)  # the shapes must agree with kdcl's; torch raises otherwise
with torch.no_grad():
    twin(torch.zeros(2, 1, 13, 11))

# --- training learns, and PyTorch reproduces predict in eval mode ------------------------------
k.run("train", "--model", P("cnn.json"), "--data", P("img.h5"), "--out", P("ck.h5"),
      "--epochs", 4, "--batch", 32, "--lr", 0.01, "--quiet")
ev = json.loads(k.run("eval", "--checkpoint", P("ck.h5"), "--data", P("img.h5"), "--json").stdout)
assert ev["accuracy"] > 0.9, ev
with h5py.File(P("ck.h5"), "r") as f:
    keys = set(f["model"].keys())
    assert "layers.4.projection.weight" in keys and "layers.4.layers.0.weight" in keys
    assert "layers.4.layers.0.bias" not in keys
    assert f["model/layers.1.num_batches_tracked"].dtype == np.int64
    assert int(f["model/layers.1.num_batches_tracked"][()]) == 4 * 10
    assert f["model/layers.0.weight"].shape == (6, 1, 3, 2)
model = load_checkpoint(P("ck.h5"))  # load_state_dict is strict: every key, every shape
k.run("predict", "--checkpoint", P("ck.h5"), "--data", P("img.h5"), "--out", P("logits.h5"))
with h5py.File(P("logits.h5"), "r") as f:
    ours = f["logits"][...]
with torch.no_grad():
    ref = model(dataset_inputs(P("img.h5"))).numpy()
diff = float(np.abs(ours - ref).max())
assert diff < 1e-4, diff
print(f"CNN: train accuracy {ev['accuracy']:.3f}; predict vs PyTorch max |diff| {diff:.2e}")

# --- one SGD step (batch = all rows) from the same --init matches torch ------------------------
torch.manual_seed(3)
init = KdclModel(spec)
with h5py.File(P("init.h5"), "w") as f:
    for name, t in init.state_dict().items():
        f.create_dataset(f"model/{name}", data=t.numpy())
for gemm in ("builtin", "clblast"):
    k.run("train", "--model", P("cnn.json"), "--data", P("img.h5"), "--out", P(f"step-{gemm}.h5"),
          "--init", P("init.h5"), "--no-shuffle", "--epochs", 1, "--batch", n, "--optimizer", "sgd",
          "--lr", 0.1, "--momentum", 0.9, "--gemm", gemm, "--quiet")
    ours = read_model(P(f"step-{gemm}.h5"))
    m = KdclModel(spec)
    m.load_state_dict(init.state_dict())
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(m(dataset_inputs(P("img.h5"))), torch.from_numpy(y).long())
    loss.backward()
    opt.step()
    worst = 0.0
    for name, t in m.state_dict().items():
        worst = max(worst, float(np.abs(ours[name] - t.numpy()).max()))
    assert worst < 1e-4, (gemm, worst)
    print(f"one SGD step ({gemm} GEMM): weights and running stats match torch, max |diff| {worst:.2e}")

# --- shapes that do not fit are refused before training, naming the layer ----------------------
bad = dict(spec, layers=[{"type": "conv2d", "filters": 4, "kernel": 17}, {"type": "flatten"},
                         {"type": "dense", "units": 3}])
write_spec(P("bad1.json"), bad)
k.fails("train", "--model", P("bad1.json"), "--data", P("img.h5"), "--out", P("x.h5"),
        mentions=["layers[0]", "conv2d", "larger"])
bad = dict(spec, layers=[{"type": "residual", "layers": [{"type": "conv2d", "filters": 4, "kernel": 1}]},
                         {"type": "flatten"}, {"type": "dense", "units": 3}])
write_spec(P("bad2.json"), bad)
k.fails("train", "--model", P("bad2.json"), "--data", P("img.h5"), "--out", P("x.h5"),
        mentions=["layers[0]", "residual", "projection"])
bad = dict(spec, layers=[{"type": "conv2d", "filters": 4, "kernel": 3}, {"type": "dense", "units": 3}])
write_spec(P("bad3.json"), bad)
k.fails("train", "--model", P("bad3.json"), "--data", P("img.h5"), "--out", P("x.h5"),
        mentions=["layers[1]", "flatten"])
print("misfitting specs refused")
