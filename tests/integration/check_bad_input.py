"""Every wrong file, flag and shape gets one 'kdcl: error:' line, a non-zero exit, and leaves an
existing output file untouched."""
import os
import sys

import h5py
import numpy as np

from common import Kdcl, clusters, write_dataset, write_spec

k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path

x, y = clusters(200, 16, 4, seed=1)
write_dataset(P("good.h5"), x, y, 4)
spec = {"name": "m", "input": [16], "layers": [{"type": "dense", "units": 8}, {"type": "relu"},
                                               {"type": "dense", "units": 4}]}
write_spec(P("m.json"), spec)
k.run("train", "--model", P("m.json"), "--data", P("good.h5"), "--out", P("ck.h5"),
      "--epochs", 1, "--quiet")
ck_bytes = open(P("ck.h5"), "rb").read()

def train_fails(data=None, model=None, extra=(), code=1, mentions=()):
    args = ["train", "--model", model or P("m.json"), "--data", data or P("good.h5"),
            "--out", P("ck.h5"), "--epochs", 1, "--quiet", *extra]
    line = k.fails(*args, code=code, mentions=mentions)
    assert open(P("ck.h5"), "rb").read() == ck_bytes, f"--out changed by a failed run: {line}"
    assert not os.path.exists(P("ck.h5.tmp")), "a partial checkpoint was left behind"
    print("ok:", line)

# files
train_fails(data=P("missing.h5"), mentions=["missing.h5"])
open(P("text.h5"), "w").write("this is not HDF5\n" * 100)
train_fails(data=P("text.h5"), mentions=["text.h5", "HDF5"])
data = open(P("good.h5"), "rb").read()
open(P("trunc.h5"), "wb").write(data[: len(data) // 2])
train_fails(data=P("trunc.h5"), mentions=["trunc.h5"])
with h5py.File(P("nolabels.h5"), "w") as f:
    f.create_dataset("inputs/x", data=x)
train_fails(data=P("nolabels.h5"), mentions=["nolabels.h5", "/labels/y"])
xw, yw = clusters(50, 12, 4, seed=2)
write_dataset(P("shape.h5"), xw, yw, 4)
train_fails(data=P("shape.h5"), mentions=["shape.h5", "/inputs/x"])
bad = y.copy()
bad[17] = 9
write_dataset(P("label.h5"), x, bad, 4)
train_fails(data=P("label.h5"), mentions=["label.h5", "17"])
write_dataset(P("classes.h5"), x, y, 7)
train_fails(data=P("classes.h5"), mentions=["classes.h5", "num_classes"])

# specs
write_spec(P("unknown.json"), {"input": [16], "layers": [{"type": "dense", "units": 4},
                                                         {"type": "swish"}]})
train_fails(model=P("unknown.json"), mentions=["unknown.json", "swish"])
write_spec(P("nofield.json"), {"input": [16], "layers": [{"type": "dense"}]})
train_fails(model=P("nofield.json"), mentions=["nofield.json", "units"])
open(P("syntax.json"), "w").write('{"input": [16], "layers": [ {"type": "dense", "units": 4 ]}')
train_fails(model=P("syntax.json"), mentions=["syntax.json", "JSON"])
write_spec(P("negative.json"), {"input": [16], "layers": [{"type": "dense", "units": -4}]})
train_fails(model=P("negative.json"), mentions=["negative.json", "units"])
write_spec(P("huge.json"), {"input": [65536, 65536], "layers": [{"type": "flatten"},
                                                               {"type": "dense", "units": 65536}]})
train_fails(model=P("huge.json"), mentions=["huge.json"])
train_fails(model=P("missing.json"), mentions=["missing.json"])

# flags and devices
train_fails(extra=["--device", "no-such-device"], mentions=["no-such-device"])
train_fails(extra=["--lr", "0"], code=2, mentions=["--lr"])
train_fails(extra=["--lr", "abc"], code=2, mentions=["--lr"])
train_fails(extra=["--batch", "0"], code=2, mentions=["--batch"])
train_fails(extra=["--optimizer", "lion"], code=2, mentions=["--optimizer"])
train_fails(extra=["--gemm", "mkl"], code=2, mentions=["--gemm"])
train_fails(extra=["--betas", "0.9"], code=2, mentions=["--betas"])
train_fails(extra=["--frobnicate"], code=2, mentions=["--frobnicate"])
with h5py.File(P("badinit.h5"), "w") as f:
    f.create_dataset("model/layers.0.weight", data=np.zeros((8, 15), np.float32))
    f.create_dataset("model/layers.0.bias", data=np.zeros(8, np.float32))
train_fails(extra=["--init", P("badinit.h5")], mentions=["badinit.h5", "layers.0.weight"])
with h5py.File(P("partinit.h5"), "w") as f:
    f.create_dataset("model/layers.0.weight", data=np.zeros((8, 16), np.float32))
train_fails(extra=["--init", P("partinit.h5")], mentions=["partinit.h5", "layers.0.bias"])
train_fails(extra=["--kernels-binary", P("good.h5")], mentions=["good.h5"])

# outputs that would destroy inputs, or cannot be written, are refused before any work
data_bytes = open(P("good.h5"), "rb").read()
spec_text = open(P("m.json")).read()
k.fails("train", "--model", P("m.json"), "--data", P("good.h5"), "--out", P("good.h5"),
        "--quiet", mentions=["--out", "--data"])
k.fails("train", "--model", P("m.json"), "--data", P("good.h5"), "--out", P("new.h5"),
        "--log", P("m.json"), "--quiet", mentions=["--log", "--model"])
k.fails("predict", "--checkpoint", P("ck.h5"), "--data", P("good.h5"), "--out", P("good.h5"),
        mentions=["--out", "--data"])
assert open(P("good.h5"), "rb").read() == data_bytes and open(P("m.json")).read() == spec_text
train_fails(extra=["--out", P("no/such/dir/ck.h5")], mentions=["does not exist"])
os.makedirs(P("adir"), exist_ok=True)
k.fails("train", "--model", P("m.json"), "--data", P("good.h5"), "--out", P("adir"),
        mentions=["directory"])
# non-finite inputs and weights are named, not left to show up as a diverged loss
xn = x.copy()
xn[42, 3] = np.inf
write_dataset(P("inf.h5"), xn, y, 4)
train_fails(data=P("inf.h5"), mentions=["inf.h5", "row 42"])
with h5py.File(P("naninit.h5"), "w") as f:
    w = np.zeros((8, 16), np.float32)
    w[1, 2] = np.nan
    f.create_dataset("model/layers.0.weight", data=w)
    f.create_dataset("model/layers.0.bias", data=np.zeros(8, np.float32))
    f.create_dataset("model/layers.2.weight", data=np.zeros((4, 8), np.float32))
    f.create_dataset("model/layers.2.bias", data=np.zeros(4, np.float32))
train_fails(extra=["--init", P("naninit.h5")], mentions=["naninit.h5", "layers.0.weight"])
# specs JSON readers would read differently
open(P("trailing.json"), "w").write(spec_text + "\n{}")
train_fails(model=P("trailing.json"), mentions=["trailing.json", "JSON"])
open(P("dupkey.json"), "w").write('{"input": [16], "layers": [{"type": "dense", "units": 4, "units": 3}]}')
train_fails(model=P("dupkey.json"), mentions=["dupkey.json", "units"])
# numbers must be plain decimals; a resumed run keeps its settings
for flag, value in (("--lr", "0x10"), ("--lr", "nan"), ("--batch", " 5"), ("--device", "")):
    train_fails(extra=[flag, value], code=2, mentions=[flag])
k.fails("train", "--model", P("m.json"), "--data", P("good.h5"), "--resume", P("ck.h5"),
        "--out", P("resumed.h5"), "--epochs", 2, "--batch", 7, mentions=["--batch", "--resume"])

# eval / predict
k.fails("eval", "--checkpoint", P("missing.h5"), "--data", P("good.h5"), mentions=["missing.h5"])
k.fails("eval", "--checkpoint", P("good.h5"), "--data", P("good.h5"), mentions=["good.h5"])
k.fails("eval", "--checkpoint", P("ck.h5"), "--data", P("shape.h5"), mentions=["shape.h5"])
open(P("logits.h5"), "wb").write(b"keep me")
k.fails("predict", "--checkpoint", P("ck.h5"), "--data", P("label.h5"), "--out", P("logits.h5"),
        mentions=["label.h5"])
assert open(P("logits.h5"), "rb").read() == b"keep me"
k.fails("predict", "--checkpoint", P("ck.h5"), "--data", P("good.h5"), code=2,
        mentions=["--out"])
k.fails("bogus-command", code=2, mentions=["bogus-command"])
print("all bad-input cases refused cleanly")
