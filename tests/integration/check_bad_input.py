"""Every wrong file, flag and shape gets one 'kdcl: error:' line, a non-zero exit, and leaves an
existing output file untouched."""
import json
import os
import subprocess
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
k.fails("train", "--model", P("m.json"), "--data", P("good.h5"), "--out", P("no/such/dir/ck.h5"),
        "--quiet", mentions=["does not exist"])
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

# --- the reliability issue's list: damaged files, dtypes, ranks, row counts, teachers, specs,
# flags, unwritable outputs, device memory -----------------------------------------------------
rng = np.random.default_rng(5)
# random bytes after a valid HDF5 signature, as data, as --resume and as eval's checkpoint
open(P("sig.h5"), "wb").write(b"\x89HDF\r\n\x1a\n" + rng.bytes(4096))
train_fails(data=P("sig.h5"), mentions=["sig.h5", "HDF5"])
# truncated at several offsets: a dataset, and a checkpoint given to --resume and to eval
for name, whole in (("data", data), ("ckpt", ck_bytes)):
    for off in (8, 40, 96, 512, 2048, len(whole) // 3, len(whole) - 512, len(whole) - 1):
        cut = P(f"cut-{name}-{off}.h5")
        open(cut, "wb").write(whole[:off])
        if name == "data":
            train_fails(data=cut, mentions=[cut])
        else:
            k.fails("train", "--data", P("good.h5"), "--resume", cut, "--out", P("ck.h5"),
                    "--epochs", 2, "--quiet", mentions=[cut])
            assert open(P("ck.h5"), "rb").read() == ck_bytes
            k.fails("eval", "--checkpoint", cut, "--data", P("good.h5"), mentions=[cut])
print("ok: truncated datasets and checkpoints (8 offsets each)")
# files that crash, overflow or hang libhdf5 1.10 itself (found by fuzzing, tests/fuzz/): refused
os.environ.setdefault("KDCL_H5_CHECK_SECONDS", "5")
reg = os.path.join(os.environ["KDCL_SOURCE_DIR"], "tests", "fuzz", "regressions", "dataset")
for name in sorted(os.listdir(reg)):
    train_fails(data=os.path.join(reg, name), mentions=[name])

# a filter this libhdf5 cannot decode (h5py's LZF): named, before any read
for where in ("inputs/x", "labels/y"):
    with h5py.File(P("lzf.h5"), "w") as f:
        f.create_dataset("inputs/x", data=x, compression="lzf" if where == "inputs/x" else None)
        f.create_dataset("labels/y", data=y, compression="lzf" if where == "labels/y" else None,
                         chunks=(50,)).attrs["num_classes"] = 4
    train_fails(data=P("lzf.h5"), mentions=["lzf.h5", "/" + where, "filter 32000", "lzf"])
with h5py.File(P("lzf.h5"), "w") as f:
    f.create_dataset("inputs/x", data=x)
    f.create_dataset("labels/y", data=y).attrs["num_classes"] = 4
    t = f.create_group("teacher")
    t.attrs["kind"], t.attrs["num_classes"], t.attrs["k"] = "logits", np.int32(4), np.int32(4)
    t.create_dataset("logits", data=np.zeros((len(y), 4), np.float32), compression="lzf")
k.fails("distill", "--model", P("m.json"), "--data", P("lzf.h5"), "--out", P("lzf-out.h5"),
        mentions=["lzf.h5", "/teacher/logits", "filter 32000"])
assert not os.path.exists(P("lzf-out.h5"))

# wrong dtypes and ranks
write_dataset(P("i8.h5"), x.astype(np.int8), y, 4)
train_fails(data=P("i8.h5"), mentions=["i8.h5", "/inputs/x", "int8"])
with h5py.File(P("f64y.h5"), "w") as f:
    f.create_dataset("inputs/x", data=x)
    f.create_dataset("labels/y", data=y.astype(np.float64)).attrs["num_classes"] = 4
train_fails(data=P("f64y.h5"), mentions=["f64y.h5", "/labels/y", "float64"])
write_dataset(P("rank1.h5"), x[:, 0], y, 4)
train_fails(data=P("rank1.h5"), mentions=["rank1.h5", "/inputs/x"])
write_dataset(P("rank5.h5"), x.reshape(200, 1, 2, 2, 4), y, 4)
train_fails(data=P("rank5.h5"), mentions=["rank5.h5", "/inputs/x"])
with h5py.File(P("yrank2.h5"), "w") as f:
    f.create_dataset("inputs/x", data=x)
    f.create_dataset("labels/y", data=y.reshape(200, 1)).attrs["num_classes"] = 4
train_fails(data=P("yrank2.h5"), mentions=["yrank2.h5", "/labels/y"])
# row counts that differ; an empty dataset; negative labels
with h5py.File(P("rows.h5"), "w") as f:
    f.create_dataset("inputs/x", data=x)
    f.create_dataset("labels/y", data=y[:199]).attrs["num_classes"] = 4
train_fails(data=P("rows.h5"), mentions=["rows.h5", "199", "200"])
write_dataset(P("empty.h5"), x[:0], y[:0], 4)
train_fails(data=P("empty.h5"), mentions=["empty.h5", "empty"])
neg = y.copy()
neg[5] = -1
write_dataset(P("neg.h5"), x, neg, 4)
train_fails(data=P("neg.h5"), mentions=["neg.h5", "5"])
xn = x.copy()
xn[7, 0] = np.nan
write_dataset(P("nan.h5"), xn, y, 4)
train_fails(data=P("nan.h5"), mentions=["nan.h5", "row 7"])

# teacher outputs: NaN/Inf, row counts, ranks, dtypes; distill flags out of range
def with_teacher(path, logits=None, idx=None, logp=None):
    write_dataset(path, x, y, 4)
    with h5py.File(path, "a") as f:
        g = f.create_group("teacher")
        g.attrs["num_classes"] = np.int32(4)
        if logits is not None:
            g.attrs["kind"], g.attrs["k"] = "logits", np.int32(4)
            g.create_dataset("logits", data=logits)
        else:
            g.attrs["kind"], g.attrs["k"] = "topk", np.int32(idx.shape[1])
            g.create_dataset("topk_idx", data=idx)
            g.create_dataset("topk_logp", data=logp)

def distill_fails(data, *extra, code=1, mentions=()):
    line = k.fails("distill", "--model", P("m.json"), "--data", data, "--out", P("ck.h5"),
                   "--epochs", 1, "--quiet", *extra, code=code, mentions=mentions)
    assert open(P("ck.h5"), "rb").read() == ck_bytes, f"--out changed by a failed run: {line}"
    assert not os.path.exists(P("ck.h5.tmp"))
    print("ok:", line)

zt = rng.standard_normal((200, 4)).astype(np.float32)
with_teacher(P("teacher.h5"), logits=zt)
for name, value in (("inf", np.inf), ("ninf", -np.inf), ("tnan", np.nan)):
    bad_t = zt.copy()
    bad_t[11, 2] = value
    with_teacher(P(f"{name}.h5"), logits=bad_t)
    distill_fails(P(f"{name}.h5"), mentions=[f"{name}.h5", "/teacher/logits", "11"])
idx = np.tile(np.array([1, 3], np.int32), (200, 1))
logp = np.log(np.tile(np.array([0.6, 0.3], np.float32), (200, 1)))
bad_lp = logp.copy()
bad_lp[13, 1] = np.nan
with_teacher(P("topknan.h5"), idx=idx, logp=bad_lp)
distill_fails(P("topknan.h5"), mentions=["topknan.h5", "/teacher/topk_logp", "13"])
with_teacher(P("trows.h5"), logits=zt[:150])
distill_fails(P("trows.h5"), mentions=["trows.h5", "150", "200"])
with_teacher(P("krows.h5"), idx=idx, logp=logp[:100])
distill_fails(P("krows.h5"), mentions=["krows.h5", "/teacher/topk_logp", "100"])
with_teacher(P("trank.h5"), logits=zt.reshape(200, 2, 2))
distill_fails(P("trank.h5"), mentions=["trank.h5", "/teacher/logits"])
with_teacher(P("ti8.h5"), logits=zt.astype(np.int8))
distill_fails(P("ti8.h5"), mentions=["ti8.h5", "int8"])
# a resumed run keeps its command and distillation settings
k.fails("distill", "--data", P("teacher.h5"), "--resume", P("ck.h5"), "--out", P("dk.h5"),
        "--epochs", 2, mentions=["kdcl train", "--resume"])
k.run("distill", "--model", P("m.json"), "--data", P("teacher.h5"), "--out", P("dk.h5"),
      "--epochs", 1, "--alpha", 0.3, "--temperature", 2, "--quiet")
for flag, value in (("--alpha", "0.4"), ("--temperature", "3"), ("--loss", "tvd")):
    k.fails("distill", "--data", P("teacher.h5"), "--resume", P("dk.h5"), "--out", P("dk.h5"),
            "--epochs", 2, flag, value, mentions=[flag, "--resume"])
for flags in (["--temperature", "0"], ["--temperature", "-2"], ["--alpha", "-0.1"],
              ["--alpha", "1.01"], ["--loss", "kl"], ["--beta", "0"], ["--skew", "-1"]):
    distill_fails(P("teacher.h5"), *flags, code=2, mentions=[flags[0]])

# spec sizes whose product overflows, sizes beyond any device, non-integer and huge kernels
for name, spec_bad, what in (
        ("ovf_input", {"input": [1 << 21, 1 << 21, 1 << 21], "layers": [
            {"type": "flatten"}, {"type": "dense", "units": 4}]}, "input"),
        ("ovf_dense", {"input": [16], "layers": [{"type": "dense", "units": 1 << 62}]}, "units"),
        ("ovf_conv", {"input": [3, 64, 64], "layers": [
            {"type": "conv2d", "filters": 1 << 40, "kernel": 3}]}, "filters"),
        ("ovf_product", {"input": [65536, 65536, 65536], "layers": [
            {"type": "conv2d", "filters": 65536, "kernel": 1}]}, "ovf_product"),
        ("kernel_frac", {"input": [1, 8, 8], "layers": [
            {"type": "conv2d", "filters": 2, "kernel": 2.5}, {"type": "flatten"},
            {"type": "dense", "units": 4}]}, "kernel"),
        ("kernel_huge", {"input": [1, 8, 8], "layers": [
            {"type": "conv2d", "filters": 2, "kernel": 1e300}]}, "kernel"),
        ("pool_huge", {"input": [1, 8, 8], "layers": [
            {"type": "maxpool2d", "size": 1 << 62}]}, "size")):
    write_spec(P(f"{name}.json"), spec_bad)
    train_fails(model=P(f"{name}.json"), mentions=[f"{name}.json", what])

# flags out of range
for flag, value in (("--lr", "-1"), ("--epochs", "0"), ("--epochs", "99999999999999999999"),
                    ("--momentum", "1"), ("--eps", "0"), ("--checkpoint-every", "-1"),
                    ("--seed", "-1"), ("--warmup-steps", "-3"), ("--lr-gamma", "2"),
                    ("--weight-decay", "-1"), ("--clip-grad-norm", "-1"), ("--log-every", "0"),
                    ("--lr-schedule", "linear"), ("--batch", "16777217")):
    train_fails(extra=[flag, value], code=2, mentions=[flag])

# an output directory that cannot be written (root writes anywhere mode bits allow nothing, so as
# root a read-only pseudo file system stands in)
if os.geteuid() != 0:
    os.makedirs(P("ro"), exist_ok=True)
    os.chmod(P("ro"), 0o555)
    ro_out = P("ro/ck.h5")
else:
    ro_out = "/proc/kdcl-test-ck.h5"
k.fails("train", "--model", P("m.json"), "--data", P("good.h5"), "--out", ro_out, "--quiet",
        mentions=["--out", ro_out])
k.fails("predict", "--checkpoint", P("ck.h5"), "--data", P("good.h5"), "--out", ro_out,
        mentions=[ro_out])
assert not os.path.exists(ro_out)

# a batch whose activations exceed the device's largest buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE):
# a conv layer of 256 x 128 x 128 floats per row and just enough (all-zero, compressed) rows
dev = json.loads(k.run("devices", "--json").stdout)["devices"][0]
rows = int(1.25 * dev["max_alloc_bytes"] / (256 * 128 * 128 * 4)) + 1
with h5py.File(P("bigrows.h5"), "w") as f:
    f.create_dataset("inputs/x", shape=(rows, 1, 128, 128), dtype=np.uint8,
                     chunks=(1, 1, 128, 128), compression="gzip")[...] = 0
    f.create_dataset("labels/y", data=np.zeros(rows, np.int32)).attrs["num_classes"] = 4
write_spec(P("wide_conv.json"), {"input": [1, 128, 128], "layers": [
    {"type": "conv2d", "filters": 256, "kernel": 3, "padding": 1}, {"type": "relu"},
    {"type": "global_avgpool"}, {"type": "flatten"}, {"type": "dense", "units": 4}]})
train_fails(data=P("bigrows.h5"), model=P("wide_conv.json"), extra=["--batch", rows],
            mentions=["--batch", "MiB"])

# --- found by an independent malformed-input batch -------------------------------------------
# a FIFO as the spec, recipe or kernels binary: refused, not read (which would block)
os.mkfifo(P("fifo.json"))
train_fails(model=P("fifo.json"), mentions=["fifo.json", "FIFO"])
k.fails("train", "--config", P("fifo.json"), "--out", P("ck.h5"), mentions=["fifo.json", "FIFO"])
os.makedirs(P("adir"), exist_ok=True)
k.fails("eval", "--checkpoint", P("ck.h5"), "--data", P("good.h5"), "--kernels-binary", P("adir"),
        mentions=["--kernels-binary", "directory"])
# an existing output that is not a regular file is refused, not replaced by rename
k.fails("predict", "--checkpoint", P("ck.h5"), "--data", P("good.h5"), "--out", P("fifo.json"),
        mentions=["--out", "FIFO"])
assert os.path.exists(P("fifo.json")) and not os.path.isfile(P("fifo.json"))
# empty values and forgotten values (the next option taken as the value)
for cmd in (["train", "--model", P("m.json"), "--data", P("good.h5"), "--out", P("ck.h5")],
            ["eval", "--checkpoint", P("ck.h5"), "--data", P("good.h5")],
            ["label", "--teacher", P("ck.h5"), "--data", P("good.h5"), "--out", P("l.h5")],
            ["export", "--checkpoint", P("ck.h5"), "--out", P("e.st")]):
    flag = cmd[3]
    k.fails(*cmd[:4], "", *cmd[5:], code=2, mentions=[flag, "empty"])
    k.fails(*cmd[:4], "--quiet" if cmd[0] == "train" else "--help", *cmd[5:], code=2,
            mentions=[flag, "value missing"])
k.fails("eval", "--checkpoint", P("ck.h5"), "--data", P("good.h5"), "--device", "", code=2,
        mentions=["--device", "empty"])
# kdcl import teacher-topk writing over its own JSONL
open(P("api.jsonl"), "w").write('{"row": 0, "top_logprobs": [{"class": 0, "logprob": -0.1}]}\n')
jsonl_bytes = open(P("api.jsonl"), "rb").read()
k.fails("import", "teacher-topk", "--jsonl", P("api.jsonl"), "--data", P("good.h5"), "--out",
        P("api.jsonl"), mentions=["--out", "--jsonl"])
assert open(P("api.jsonl"), "rb").read() == jsonl_bytes
# rows declared but never written; a layout kdcl does not read
with h5py.File(P("unwritten.h5"), "w") as f:
    f.create_dataset("inputs/x", shape=(2 ** 40, 16), dtype=np.float32, chunks=(1024, 16))
    f.create_dataset("labels/y", data=np.zeros(10, np.int32)).attrs["num_classes"] = 4
train_fails(data=P("unwritten.h5"), mentions=["unwritten.h5", "ever written"])
k.fails("eval", "--checkpoint", P("ck.h5"), "--data", P("unwritten.h5"), mentions=["ever written"])
with h5py.File(P("partial.h5"), "w") as f:
    f.create_dataset("inputs/x", shape=(200, 16), dtype=np.float32, chunks=(50, 16),
                     compression="gzip")[:120] = x[:120]
    f.create_dataset("labels/y", data=y).attrs["num_classes"] = 4
train_fails(data=P("partial.h5"), mentions=["partial.h5", "ever written"])
write_dataset(P("hwc.h5"), x, y, 4)
with h5py.File(P("hwc.h5"), "a") as f:
    f["inputs/x"].attrs["layout"] = "HWC"
train_fails(data=P("hwc.h5"), mentions=["hwc.h5", "layout", "HWC"])

# a damaged checkpoint given to --resume: position, optimizer, train_config
def damaged(name, edit, source=ck_bytes):
    """A copy of a good checkpoint (bytes), edited through h5py."""
    path = P(name)
    with open(path, "wb") as f:
        f.write(source)
    with h5py.File(path, "a") as f:
        edit(f)
    return path

def replace(key, value):
    def edit(f):
        del f[key]
        f.create_dataset(key, data=value)
    return edit

def set_scalar(key, value):
    return replace(key, np.int64(value))

for name, edit, mentions in (
        ("cursor.h5", set_scalar("train/data_cursor", 10 ** 6), ["cursor.h5", "position"]),
        ("epoch.h5", set_scalar("train/epoch", 10 ** 15), ["epoch.h5", "position"]),
        ("step.h5", set_scalar("train/step", -5), ["step.h5", "position"]),
        ("opt.h5", lambda f: f["optimizer"].attrs.modify("type", "lamb"), ["opt.h5", "lamb"]),
        ("lr.h5", lambda f: f["optimizer"].attrs.modify("lr", np.nan), ["lr.h5", "lr"]),
        ("cfg.h5", lambda f: (f.__delitem__("meta/train_config"),
                              f.create_dataset("meta/train_config", data="{broken")),
         ["cfg.h5", "train_config"])):
    path = damaged(name, edit)
    k.fails("train", "--data", P("good.h5"), "--resume", path, "--out", P("ck.h5"), "--epochs", 2,
            "--quiet", mentions=mentions)
    assert open(P("ck.h5"), "rb").read() == ck_bytes

# a spec that is not UTF-8 (it would travel into checkpoints and safetensors headers)
with open(P("latin1.json"), "wb") as f:
    f.write(json.dumps(dict(spec, name="caf\u00e9")).encode("utf-8").replace(b"\\u00e9", b"\xe9"))
train_fails(model=P("latin1.json"), mentions=["latin1.json", "UTF-8"])
# checkpoints whose /model is not the spec's state_dict: export refuses them, inspect exits 1
def spec_edit(f):
    cfg = json.loads(f["meta/model_config"][()])
    cfg["layers"][1]["type"] = "warp"
    del f["meta/model_config"]
    f.create_dataset("meta/model_config", data=json.dumps(cfg))

for name, edit, mentions in (
        ("rank.h5", replace("model/layers.2.bias", np.zeros((4, 1), np.float32)), ["layers.2.bias"]),
        ("extra.h5", lambda f: f.create_dataset("model/layers.9.weight", data=np.zeros(3, np.float32)),
         ["5 tensors", "strictly"]),
        ("warp.h5", spec_edit, ["warp"])):
    path = damaged(name, edit)
    k.fails("export", "--checkpoint", path, "--out", P(name + ".st"), mentions=[name, *mentions])
    assert not os.path.exists(P(name + ".st"))
    p = k.run("inspect", path, "--json", expect=1)
    assert json.loads(p.stdout)["valid"] is False
k.run("inspect", P("ck.h5"))
# a negative batch-norm running variance, a num_batches_tracked of the wrong shape
write_spec(P("bn.json"), {"name": "bn", "input": [16], "layers": [
    {"type": "dense", "units": 8}, {"type": "batchnorm1d"}, {"type": "relu"},
    {"type": "dense", "units": 4}]})
k.run("train", "--model", P("bn.json"), "--data", P("good.h5"), "--out", P("bn.h5"), "--epochs", 1,
      "--quiet")
bn_bytes = open(P("bn.h5"), "rb").read()
for name, key, value, mention in (
        ("var.h5", "model/layers.1.running_var", -np.ones(8, np.float32), "negative variance"),
        ("nbt.h5", "model/layers.1.num_batches_tracked", np.zeros(2, np.int64), "one integer")):
    damaged(name, replace(key, value), source=bn_bytes)
    k.fails("eval", "--checkpoint", P(name), "--data", P("good.h5"), mentions=[name, mention])
# a JSONL line with a NUL byte, one whose probabilities sum above 1: named by line
with open(P("nul.jsonl"), "wb") as f:
    f.write(b'{"row": 0, "top_logprobs": [{"class": 0, "logprob": -0.1}]\x00}\n')
k.fails("import", "teacher-topk", "--jsonl", P("nul.jsonl"), "--data", P("good.h5"), "--out",
        P("t.h5"), mentions=["nul.jsonl:1", "NUL"])
with open(P("mass.jsonl"), "w") as f:
    for r in range(200):
        f.write(json.dumps({"row": r, "top_logprobs": [{"class": c, "logprob": -0.1}
                                                       for c in range(3)]}) + "\n")
k.fails("import", "teacher-topk", "--jsonl", P("mass.jsonl"), "--data", P("good.h5"), "--out",
        P("t.h5"), mentions=["mass.jsonl:1", "sum to"])
k.fails("inspect", "", code=2, mentions=["empty"])
env = dict(os.environ, KDCL_H5_CHECK_SECONDS="abc")
p = subprocess.run([k.binary, "eval", "--checkpoint", P("ck.h5"), "--data", P("good.h5")],
                   capture_output=True, text=True, env=env)
assert p.returncode == 1 and p.stderr.startswith("kdcl: error: KDCL_H5_CHECK_SECONDS"), p.stderr
print("all bad-input cases refused cleanly")
