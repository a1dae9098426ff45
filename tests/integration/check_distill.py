"""Distillation losses against PyTorch, top-k = dense at k = C, online = offline, bad input."""
import json
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from common import Kdcl, clusters, read_model, write_dataset, write_spec
from kdcl_torch import KdclModel

torch.set_num_threads(1)
k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path
C = 5
x, y = clusters(100, 12, C, seed=11, spread=2.0)
rng = np.random.default_rng(3)
zt = (3 * rng.standard_normal((100, C))).astype(np.float32)


def with_teacher(path, logits=None, topk=None, classes=C):
    write_dataset(path, x, y, C)
    with h5py.File(path, "a") as f:
        g = f.create_group("teacher")
        g.attrs["teacher_id"] = "test"
        g.attrs["num_classes"] = np.int32(classes)
        if logits is not None:
            g.attrs["kind"] = "logits"
            g.attrs["k"] = np.int32(classes)
            g.create_dataset("logits", data=logits)
        else:
            idx, logp = topk
            g.attrs["kind"] = "topk"
            g.attrs["k"] = np.int32(idx.shape[1])
            g.create_dataset("topk_idx", data=idx)
            g.create_dataset("topk_logp", data=logp)


with_teacher(P("dense.h5"), logits=zt)
spec = {"name": "student", "input": [12],
        "layers": [{"type": "dense", "units": 16}, {"type": "relu"}, {"type": "dense", "units": C}]}
write_spec(P("student.json"), spec)
torch.manual_seed(0)
init = KdclModel(spec)
with h5py.File(P("init.h5"), "w") as f:
    for name, t in init.state_dict().items():
        f.create_dataset(f"model/{name}", data=t.numpy())


def term(loss, zs, zt, T, beta, skew):
    ls, lt = F.log_softmax(zs / T, 1), F.log_softmax(zt / T, 1)
    s, t = ls.exp(), lt.exp()
    if loss == "kd":
        return T * T * (t * (lt - ls)).sum(1)
    if loss == "rkl":
        return T * T * (s * (ls - lt)).sum(1)
    if loss == "jsd":
        lm = (beta * t + (1 - beta) * s).log()
        return T * T * (beta * (t * (lt - lm)).sum(1) + (1 - beta) * (s * (ls - lm)).sum(1))
    if loss == "skl":
        return T * T * (t * (lt - (skew * t + (1 - skew) * s).log())).sum(1)
    if loss == "tvd":
        return T * T * 0.5 * (t - s).abs().sum(1)
    if loss == "mse":
        return ((zs - zt) ** 2).mean(1)
    return torch.zeros(zs.shape[0])


def torch_distill(loss, T, alpha, beta=0.5, skew=0.1, epochs=2, batch=32, lr=0.1):
    m = KdclModel(spec)
    m.load_state_dict(init.state_dict())
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    xt, yt, tt = torch.from_numpy(x), torch.from_numpy(y).long(), torch.from_numpy(zt)
    a = 1.0 if loss == "ce" else alpha
    for _ in range(epochs):
        for i in range(0, len(xt), batch):
            opt.zero_grad()
            zs = m(xt[i:i + batch])
            ce = F.cross_entropy(zs, yt[i:i + batch])
            kd = term(loss, zs, tt[i:i + batch], T, beta, skew).mean()
            (a * ce + (1 - a) * kd).backward()
            opt.step()
    return {n: t.detach().numpy() for n, t in m.state_dict().items()}


def distill(out, data, *flags):
    k.run("distill", "--model", P("student.json"), "--data", data, "--out", out, "--init",
          P("init.h5"), "--no-shuffle", "--epochs", 2, "--batch", 32, "--optimizer", "sgd",
          "--lr", 0.1, "--quiet", *flags)
    return read_model(out)


def worst(a, b):
    return max(float(np.abs(a[n] - b[n]).max()) for n in b)


# --- every loss matches its definition in PyTorch ---------------------------------------------
for loss, T, alpha in [("kd", 4, 0.5), ("kd", 0.5, 0.2), ("rkl", 2, 0.3), ("jsd", 3, 0.0),
                       ("skl", 2, 0.5), ("tvd", 1.5, 0.5), ("mse", 1, 0.7), ("ce", 1, 0.5)]:
    ours = distill(P(f"{loss}-T{T}.h5"), P("dense.h5"), "--loss", loss, "--temperature", T,
                   "--alpha", alpha, "--beta", 0.3, "--skew", 0.2)
    ref = torch_distill(loss, T, alpha, beta=0.3, skew=0.2)
    w = worst(ours, ref)
    assert w < 2e-5, (loss, T, alpha, w)
    print(f"{loss} T={T} alpha={alpha}: 6 SGD steps match PyTorch, max |diff| {w:.2e}")

# --- top-k with k = C equals dense kd ----------------------------------------------------------
logp = F.log_softmax(torch.from_numpy(zt), 1).numpy()
idx = np.argsort(-logp, axis=1).astype(np.int32)
with_teacher(P("topk.h5"), topk=(idx, np.take_along_axis(logp, idx, 1).astype(np.float32)))
dense = read_model(P("kd-T4.h5"))
for mode in ("drop", "uniform"):
    ours = distill(P(f"topk-{mode}.h5"), P("topk.h5"), "--loss", "kd", "--temperature", 4,
                   "--alpha", 0.5, "--topk-missing", mode)
    w = worst(ours, dense)
    assert w < 2e-5, (mode, w)
    print(f"top-k (k = C, {mode}) equals dense kd: max |diff| {w:.2e}")
# a real top-3 teacher trains and logs both loss parts
with_teacher(P("top3.h5"), topk=(idx[:, :3].copy(), np.take_along_axis(logp, idx[:, :3], 1).astype(np.float32)))
k.run("distill", "--model", P("student.json"), "--data", P("top3.h5"), "--out", P("top3-ck.h5"),
      "--epochs", 2, "--log", P("top3.jsonl"), "--quiet")
rec = [json.loads(l) for l in open(P("top3.jsonl"))][-1]
assert rec["event"] == "epoch" and rec["train_kd_loss"] >= 0 and rec["train_ce_loss"] > 0, rec

# --- online teacher equals offline logits from kdcl label -------------------------------------
write_dataset(P("plain.h5"), x, y, C)
tspec = {"name": "teacher", "input": [12], "layers": [{"type": "dense", "units": 32}, {"type": "tanh"},
                                                      {"type": "dense", "units": C}]}
write_spec(P("teacher.json"), tspec)
k.run("train", "--model", P("teacher.json"), "--data", P("plain.h5"), "--out", P("teacher.h5"),
      "--epochs", 3, "--quiet")
k.run("label", "--teacher", P("teacher.h5"), "--data", P("plain.h5"), "--out", P("labelled.h5"))
offline = distill(P("offline.h5"), P("labelled.h5"), "--loss", "jsd")
online = distill(P("online.h5"), P("plain.h5"), "--loss", "jsd", "--teacher", P("teacher.h5"))
w = worst(online, offline)
assert w < 1e-5, w
ev = json.loads(k.run("eval", "--checkpoint", P("online.h5"), "--data", P("labelled.h5"), "--json").stdout)
assert 0 <= ev["teacher_agreement"] <= 1 and ev["teacher_kl"] >= 0, ev
print(f"online teacher equals offline labels: max |diff| {w:.2e}; eval agreement {ev['teacher_agreement']:.3f}")
k.run("label", "--teacher", P("teacher.h5"), "--data", P("plain.h5"), "--topk", 2, "--out", P("labelled2.h5"))
with h5py.File(P("labelled2.h5"), "r") as f:
    lp = f["teacher/topk_logp"][...]
    assert f["teacher"].attrs["kind"] in ("topk", b"topk") and lp.shape == (100, 2)
    assert np.all(lp[:, 0] >= lp[:, 1]) and np.all(lp <= 0)

# --- bad teacher input: one error line, exit 1, no output file --------------------------------
def refused(data, *flags, mentions=()):
    out = P("refused.h5")
    k.fails("distill", "--model", P("student.json"), "--data", data, "--out", out, "--quiet",
            *flags, mentions=mentions)
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")

refused(P("plain.h5"), mentions=["plain.h5", "/teacher"])
with_teacher(P("classes.h5"), logits=np.zeros((100, C + 1), np.float32), classes=C + 1)
refused(P("classes.h5"), mentions=["classes.h5"])
nan = zt.copy()
nan[7, 2] = np.nan
with_teacher(P("nan.h5"), logits=nan)
refused(P("nan.h5"), mentions=["nan.h5", "7"])
refused(P("top3.h5"), "--loss", "mse", mentions=["mse"])
refused(P("top3.h5"), "--loss", "rkl", mentions=["rkl", "uniform"])
wide_spec = dict(tspec, layers=[{"type": "dense", "units": 4}, {"type": "dense", "units": C + 2}])
write_spec(P("wide.json"), wide_spec)
write_dataset(P("seven.h5"), x, y, C + 2)
k.run("train", "--model", P("wide.json"), "--data", P("seven.h5"), "--out", P("t7.h5"), "--epochs", 1, "--quiet")
refused(P("plain.h5"), "--teacher", P("t7.h5"), mentions=["t7.h5", "classes"])
k.fails("label", "--teacher", P("t7.h5"), "--data", P("plain.h5"), "--out", P("l7.h5"), mentions=["classes"])
assert not os.path.exists(P("l7.h5"))
for flags in (["--beta", "1"], ["--skew", "1"], ["--temperature", "0"], ["--alpha", "1.5"],
              ["--loss", "kl"], ["--topk-missing", "zero"]):
    k.fails("distill", "--model", P("student.json"), "--data", P("dense.h5"), "--out", P("x.h5"),
            *flags, code=2, mentions=[flags[0]])
print("bad teacher input refused cleanly")
