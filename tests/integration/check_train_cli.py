"""kdcl train/eval/predict end to end: learning, PyTorch parity of logits and optimizer steps,
GEMM back ends, kernel binaries, resume, and bad input."""
import json
import os
import sys

import h5py
import numpy as np
import torch

from common import Kdcl, clusters, read_model, write_dataset, write_spec

torch.set_num_threads(1)
k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path

# --- a separable problem written by h5py learns to > 95% --------------------------------------
x, y = clusters(2000, 16, 4, seed=1)
write_dataset(P("train.h5"), x, y, 4)
xv, yv = clusters(500, 16, 4, seed=2)
write_dataset(P("val.h5"), xv, yv, 4)
spec = {"name": "clusters-mlp", "input": [16],
        "layers": [{"type": "dense", "units": 32}, {"type": "tanh"},
                   {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 4}]}
write_spec(P("mlp.json"), spec)
k.run("train", "--model", P("mlp.json"), "--data", P("train.h5"), "--val", P("val.h5"),
      "--out", P("ck.h5"), "--epochs", 3, "--batch", 64, "--lr", 0.01, "--log", P("log.jsonl"),
      "--quiet")
ev = json.loads(k.run("eval", "--checkpoint", P("ck.h5"), "--data", P("val.h5"), "--json").stdout)
assert ev["rows"] == 500 and ev["accuracy"] > 0.95, ev
records = [json.loads(l) for l in open(P("log.jsonl"))]
epochs = [r for r in records if r["event"] == "epoch"]
assert [r["epoch"] for r in epochs] == [1, 2, 3], epochs
assert epochs[-1]["val_accuracy"] > 0.95 and epochs[-1]["train_loss"] < epochs[0]["train_loss"]
assert any(r["event"] == "step" for r in records)
print(f"clusters: val accuracy {ev['accuracy']:.4f}, loss {ev['loss']:.4f}")

# --- the checkpoint in PyTorch: load_state_dict, logits equal kdcl predict ---------------------
from kdcl_torch import dataset_inputs, load_checkpoint

with h5py.File(P("ck.h5"), "r") as f:
    assert f.attrs["format"] in ("kdcl-checkpoint", b"kdcl-checkpoint")
    assert f.attrs["complete"] == 1
    assert sorted(f["model"].keys()) == ["layers.0.bias", "layers.0.weight", "layers.3.bias",
                                         "layers.3.weight"]
    assert f["model/layers.0.weight"].shape == (32, 16)
    assert int(f["train/step"][()]) == 3 * 32
model = load_checkpoint(P("ck.h5"))
k.run("predict", "--checkpoint", P("ck.h5"), "--data", P("val.h5"), "--out", P("logits.h5"))
with h5py.File(P("logits.h5"), "r") as f:
    kd_logits = f["logits"][...]
with torch.no_grad():
    torch_logits = model(dataset_inputs(P("val.h5"))).numpy()
diff = np.abs(kd_logits - torch_logits).max()
assert kd_logits.shape == (500, 4) and diff < 1e-4, diff
acc = (torch_logits.argmax(1) == yv).mean()
assert abs(acc - ev["accuracy"]) < 1e-9
print(f"predict vs PyTorch: max |diff| {diff:.2e}")

# --- optimizer parity with torch.optim from the same --init weights, no shuffle ---------------
xs, ys = clusters(100, 16, 4, seed=3)
write_dataset(P("small.h5"), xs, ys, 4)
spec2 = {"name": "parity", "input": [16],
         "layers": [{"type": "dense", "units": 24}, {"type": "gelu"},
                    {"type": "dense", "units": 12}, {"type": "sigmoid"},
                    {"type": "dense", "units": 4}, {"type": "relu"}, {"type": "dense", "units": 4}]}
write_spec(P("parity.json"), spec2)
from kdcl_torch import KdclModel

torch.manual_seed(0)
twin = KdclModel(spec2)
with h5py.File(P("init.h5"), "w") as f:  # a state_dict written by h5py, as a user would
    for name, t in twin.state_dict().items():
        f.create_dataset(f"model/{name}", data=t.numpy())
init_state = {n: t.clone() for n, t in twin.state_dict().items()}

def torch_train(opt_factory, epochs, batch, clip=0.0):
    m = KdclModel(spec2)
    m.load_state_dict(init_state)
    opt = opt_factory(m.parameters())
    xt, yt = torch.from_numpy(xs), torch.from_numpy(ys).long()
    for _ in range(epochs):
        for i in range(0, len(xt), batch):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(xt[i:i + batch]), yt[i:i + batch])
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
            opt.step()
    return {n: t.detach().numpy() for n, t in m.state_dict().items()}

cases = [
    ("sgd", ["--optimizer", "sgd", "--lr", 0.1],
     lambda p: torch.optim.SGD(p, lr=0.1), 0.0),
    ("sgd-nesterov-wd", ["--optimizer", "sgd", "--lr", 0.05, "--momentum", 0.9, "--nesterov",
                         "--weight-decay", 0.01],
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), 0.0),
    ("sgd-dampening-clip", ["--optimizer", "sgd", "--lr", 0.2, "--momentum", 0.5, "--dampening",
                            0.3, "--clip-grad-norm", 0.5],
     lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.5, dampening=0.3), 0.5),
    ("adamw", ["--optimizer", "adamw", "--lr", 0.01, "--weight-decay", 0.05, "--betas", "0.8,0.99",
               "--eps", 1e-6],
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05, betas=(0.8, 0.99), eps=1e-6), 0.0),
]
for name, flags, factory, clip in cases:
    k.run("train", "--model", P("parity.json"), "--data", P("small.h5"), "--out", P(f"{name}.h5"),
          "--init", P("init.h5"), "--no-shuffle", "--epochs", 2, "--batch", 32, "--quiet", *flags)
    ours = read_model(P(f"{name}.h5"))
    ref = torch_train(factory, 2, 32, clip)
    worst = max(float(np.abs(ours[n] - ref[n]).max()) for n in ref)
    assert worst < 2e-5, (name, worst)
    print(f"{name}: weights after 8 steps match torch.optim, max |diff| {worst:.2e}")

# --- GEMM back ends agree; a run from a kernel binary equals a run from source -----------------
losses = {}
for gemm in ("builtin", "clblast"):
    k.run("train", "--model", P("mlp.json"), "--data", P("train.h5"), "--out", P(f"g-{gemm}.h5"),
          "--epochs", 1, "--gemm", gemm, "--log", P(f"g-{gemm}.jsonl"), "--quiet")
    losses[gemm] = [json.loads(l) for l in open(P(f"g-{gemm}.jsonl"))][-1]["train_loss"]
assert abs(losses["builtin"] - losses["clblast"]) < 1e-4 * max(1.0, abs(losses["builtin"])), losses
print(f"train loss builtin {losses['builtin']:.6f} vs clblast {losses['clblast']:.6f}")
k.run("compile-kernels", "--out", P("kernels.bin"))
k.run("train", "--model", P("mlp.json"), "--data", P("train.h5"), "--out", P("g-bin.h5"),
      "--epochs", 1, "--gemm", "builtin", "--kernels-binary", P("kernels.bin"), "--quiet")
a, b = read_model(P("g-builtin.h5")), read_model(P("g-bin.h5"))
assert all(np.array_equal(a[n], b[n]) for n in a), "kernel binary run differs from source run"
print("--kernels-binary run: weights bit-identical to the run from source")

# --- resume continues to exactly the uninterrupted run -----------------------------------------
common = ["--model", P("mlp.json"), "--data", P("train.h5"), "--batch", 64, "--seed", 7, "--quiet"]
k.run("train", *common, "--epochs", 3, "--out", P("full.h5"))
k.run("train", *common, "--epochs", 1, "--out", P("part.h5"))
k.run("train", *common, "--epochs", 3, "--resume", P("part.h5"), "--out", P("part.h5"))
a, b = read_model(P("full.h5")), read_model(P("part.h5"))
assert all(np.array_equal(a[n], b[n]) for n in a), "resumed run differs from uninterrupted run"
print("resume after epoch 1 of 3: weights bit-identical to the uninterrupted run")

# --- devices ---------------------------------------------------------------------------------
devs = json.loads(k.run("devices", "--json").stdout)["devices"]
assert any(d["type"] == "cpu" for d in devs), devs
print("devices:", [d["name"] for d in devs])
