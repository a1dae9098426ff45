"""kdcl bench gemm / bench step: --json prints exactly one object with the documented fields;
GEMM results agree with a double reference on every transpose and both back ends; a step of the
shipped MLP student runs as 7 launches with the built-in GEMM (dense+bias+activation fused);
bench step --data reports the three feeds, with the set held on the device, in host memory or
streamed, and training from each gives the same weights; flags are checked."""
import json
import os
import sys

from common import SOURCE_DIR, Kdcl, read_model, write_spec

kdcl = Kdcl(sys.argv[1], sys.argv[2])


def one_json(*args):
    p = kdcl.run(*args)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one JSON line, got {p.stdout!r}"
    return json.loads(lines[0])


devices = one_json("devices", "--json")["devices"]
backends = ["builtin"] + (["clblast"] if devices and devices[0]["clblast"] else [])

# GEMM: every transpose, ragged sizes, and a long-k shape (the blocked kernels)
for backend in backends:
    for m, n, k in ((37, 45, 29), (150, 70, 1030)):
        if backend == "clblast" and k > 100:
            continue  # CLBlast's default kernels on PoCL are slow; the small shape suffices
        for flags in ((), ("--ta",), ("--tb",), ("--ta", "--tb")):
            r = one_json("bench", "gemm", "--m", m, "--n", n, "--k", k, *flags, "--repeat", 2,
                         "--gemm", backend, "--json")
            for f in ("device", "op", "best_gflops", "median_gflops", "best_ms", "median_ms",
                      "max_abs_err", "max_rel_err", "checked", "calls_per_sample"):
                assert f in r, f
            assert r["gemm"] == backend and (r["m"], r["n"], r["k"]) == (m, n, k)
            assert r["op"] == ("T" if "--ta" in flags else "N") + ("T" if "--tb" in flags else "N")
            assert r["best_gflops"] >= r["median_gflops"] > 0
            assert r["checked"] == min(1024, m * n)
            # |error| / sum|a*b| of float32 sums: ~K * 2^-24 at worst, far less in practice
            assert r["max_rel_err"] < 1e-5, r
print(f"bench gemm: {', '.join(backends)}, 4 transposes, errors within float rounding")

# A step of the shipped student: distillation and labels only
mlp = os.path.join(SOURCE_DIR, "models", "fmnist-mlp-small.json")
for loss in ("kd", "ce"):
    r = one_json("bench", "step", "--model", mlp, "--loss", loss, "--steps", 40, "--warmup", 2,
                 "--gemm", "builtin", "--json")
    for f in ("samples_per_s", "step_ms", "launches_per_step", "kernels", "device_bytes",
              "peak_rss_bytes", "gemm_ms_per_step", "kernel_ms_per_step", "step_over_gemm"):
        assert f in r, f
    assert r["model"] == "fmnist-mlp-small" and r["batch"] == 128 and r["loss"] == loss
    assert r["params"] == 784 * 64 + 64 + 64 * 10 + 10
    assert r["samples_per_s"] > 0 and r["step_ms"] > 0
    assert r["gemm"] == "builtin"
    # forward 2 (GEMM + bias + relu), loss 1, backward 3 GEMMs (activation gradient and bias
    # sums inside), optimizer 1
    assert r["launches_per_step"] == 7, r["launches_per_step"]
    # the step's GEMMs replayed alone: 2 forward, 3 backward (no input gradient for layer 0)
    assert r["gemm_launches_per_step"] == 5, r["gemm_launches_per_step"]
    # timings are only reported, never asserted (a loaded machine moves them by 2x and more)
    assert r["step_over_gemm"] > 0 and r["gemm_ms_per_step"] > 0, r
    assert r["profiled_gemm_ms_per_step"] > 0
    names = {k["name"] for k in r["kernels"]}
    assert "kd_adamw_step" in names and any(n.startswith("kd_gemm_") for n in names), names
    shares = sum(k["share"] for k in r["kernels"])
    assert abs(shares - 1) < 1e-6, shares
    db = r["device_bytes"]
    assert db["params"] == db["grads"] >= 4 * r["params"] and db["optimizer state"] == 2 * db["params"]
    assert db["total"] == sum(v for k, v in db.items() if k != "total")
    assert r["peak_rss_bytes"] > 1 << 20
print("bench step: fmnist-mlp-small kd and ce, 7 launches per step, profile and memory fields")

# gelu (the pre-activation kept for its backward), dropout, tanh, a top-level sigmoid output, and
# sgd, through the human-readable report
spec = kdcl.path("mixed.json")
write_spec(spec, {"name": "mixed", "input": [12], "layers": [
    {"type": "dense", "units": 33}, {"type": "gelu"}, {"type": "dropout", "rate": 0.25},
    {"type": "dense", "units": 20}, {"type": "tanh"},
    {"type": "dense", "units": 5}, {"type": "sigmoid"}]})
p = kdcl.run("bench", "step", "--model", spec, "--batch", 9, "--loss", "tvd", "--optimizer", "sgd",
             "--steps", 3, "--warmup", 1, "--upload")
assert "samples/s" in p.stdout and "device memory" in p.stdout and "peak host RSS" in p.stdout, p.stdout
print("bench step: gelu/dropout/tanh/sigmoid spec, sgd, --upload")

# From a kernel binary (the FPGA flow): the built-in GEMM, the same fields
kbin = kdcl.path("kernels.bin")
kdcl.run("compile-kernels", "--out", kbin)
r = one_json("bench", "gemm", "--m", 33, "--n", 17, "--k", 9, "--repeat", 2, "--kernels-binary",
             kbin, "--json")
assert r["gemm"] == "builtin" and r["max_rel_err"] < 1e-5, r
r = one_json("bench", "step", "--model", mlp, "--steps", 4, "--warmup", 1, "--kernels-binary",
             kbin, "--json")
assert r["gemm"] == "builtin" and r["gemm_launches_per_step"] == 5, r
kdcl.fails("bench", "gemm", "--m", 4, "--n", 4, "--k", 4, "--kernels-binary",
           kdcl.path("no-such.bin"), code=1, mentions=("no-such.bin",))
print("bench gemm and step from --kernels-binary")

# --data: the step fed from a file through the training loader. A small compressed, chunked
# dataset with dense teacher logits; the loader holds it in memory, or streams it with
# KDCL_DATA_MEMORY=0. Only the fields are checked here (timings are not asserted).
import h5py
import numpy as np

rng = np.random.default_rng(7)
rows = 1000
data = kdcl.path("data.h5")
with h5py.File(data, "w") as f:
    f.attrs["format"] = "kdcl-dataset"
    f.attrs["format_version"] = np.array([1, 0], dtype=np.int32)
    x = f.create_dataset("inputs/x", data=rng.integers(0, 256, (rows, 1, 28, 28), dtype=np.uint8),
                         chunks=(84, 1, 28, 28), compression="gzip", shuffle=True)
    x.attrs["scale"], x.attrs["mean"], x.attrs["std"] = np.float32(1 / 255), np.float32(0.3), np.float32(0.35)
    y = f.create_dataset("labels/y", data=rng.integers(0, 10, rows, dtype=np.int32), chunks=(500,))
    y.attrs["num_classes"] = np.int32(10)
    t = f.create_group("teacher")
    t.attrs["kind"], t.attrs["num_classes"], t.attrs["k"] = "logits", np.int32(10), np.int32(10)
    t.create_dataset("logits", data=rng.standard_normal((rows, 10), dtype=np.float32), chunks=(100, 10))


# Where the loader holds the set: on the device (KDCL_DATA_ON_DEVICE=1; the default on GPUs),
# in host memory (=0; the default on CPU devices such as PoCL's), or streamed from the file
# (KDCL_DATA_MEMORY=0).
HOLDINGS = {"device": {"KDCL_DATA_ON_DEVICE": "1"}, "host": {"KDCL_DATA_ON_DEVICE": "0"},
            "streamed": {"KDCL_DATA_MEMORY": "0"}}


def with_env(env, fn):
    for k, v in env.items():
        os.environ[k] = v
    try:
        return fn()
    finally:
        for k in env:
            os.environ.pop(k, None)


for held, env in HOLDINGS.items():
    r = with_env(env, lambda: one_json(
        "bench", "step", "--model", mlp, "--loss", "kd", "--batch", 64, "--data", data, "--steps",
        40, "--rounds", 2, "--warmup", 2, "--json"))
    d = r["data"]
    assert d["path"] == data and d["rows"] == rows and d["teacher"] == "logits", d
    assert d["inputs"] == "uint8" and d["held"] == held, d
    assert d["rounds"] == 2 and d["steps_per_block"] == 20, d
    # 2 warm-up and 40 timed steps of 64 rows from 1000: the order starts again after 16 steps
    assert d["epochs_started"] == 3, d
    for f in ("resident_step_ms", "host_step_ms", "file_step_ms", "file_over_resident",
              "file_over_resident_of_medians", "host_over_resident"):
        assert d[f] > 0, (f, d)
    assert r["step_ms"] == d["resident_step_ms"] and r["batch"] == 64
default = one_json("bench", "step", "--model", mlp, "--loss", "kd", "--batch", 64, "--data", data,
                   "--steps", 4, "--rounds", 1, "--warmup", 1, "--json")
assert default["data"]["held"] == ("host" if devices[0]["type"] == "cpu" else "device"), default
print("bench step --data: held on the device, in host memory and streamed, the feeds' fields")

# The loader's three ways of holding a set give the same batches: runs end with identical
# weights, for uint8 inputs with dense teacher logits (distill, and train on the labels) and
# float inputs with a top-k teacher; and for a teacher run online, whose input is gathered too.
# 1000 rows in batches of 64: the last batch of an epoch is short.
topk_data = kdcl.path("data-topk.h5")
with h5py.File(topk_data, "w") as f:
    f.attrs["format"] = "kdcl-dataset"
    f.attrs["format_version"] = np.array([1, 0], dtype=np.int32)
    x = f.create_dataset("inputs/x", data=rng.standard_normal((rows, 784), dtype=np.float32),
                         chunks=(100, 784))
    x.attrs["scale"], x.attrs["mean"], x.attrs["std"] = np.float32(0.5), np.float32(0.1), np.float32(3.0)
    y = f.create_dataset("labels/y", data=rng.integers(0, 10, rows, dtype=np.int32))
    y.attrs["num_classes"] = np.int32(10)
    t = f.create_group("teacher")
    t.attrs["kind"], t.attrs["num_classes"], t.attrs["k"] = "topk", np.int32(10), np.int32(3)
    idx = np.argsort(rng.random((rows, 10)), axis=1)[:, :3].astype(np.int32)
    logp = np.sort(np.log(rng.dirichlet(np.ones(10), rows)).astype(np.float32), axis=1)[:, ::-1][:, :3]
    t.create_dataset("topk_idx", data=idx)
    t.create_dataset("topk_logp", data=np.ascontiguousarray(logp))
# 20 features: the gather kernel's 16-wide part and its tail
narrow_data, narrow_spec = kdcl.path("data-narrow.h5"), kdcl.path("narrow.json")
with h5py.File(narrow_data, "w") as f:
    f.attrs["format"] = "kdcl-dataset"
    f.attrs["format_version"] = np.array([1, 0], dtype=np.int32)
    x = f.create_dataset("inputs/x", data=rng.integers(0, 256, (rows, 20), dtype=np.uint8))
    x.attrs["scale"], x.attrs["mean"], x.attrs["std"] = np.float32(1 / 255), np.float32(0.5), np.float32(0.25)
    y = f.create_dataset("labels/y", data=rng.integers(0, 10, rows, dtype=np.int32))
    y.attrs["num_classes"] = np.int32(10)
write_spec(narrow_spec, {"name": "narrow", "input": [20], "layers": [
    {"type": "dense", "units": 16}, {"type": "relu"}, {"type": "dense", "units": 10}]})
online_teacher = kdcl.path("online-teacher.h5")
kdcl.run("train", "--model", mlp, "--data", data, "--out", online_teacher, "--epochs", 1, "--batch",
         64, "--quiet")
runs = {"distill dense": ("distill", "--loss", "kd", "--data", data),
        "train": ("train", "--data", data),
        "distill top-k, float inputs": ("distill", "--loss", "kd", "--data", topk_data),
        "distill online": ("distill", "--loss", "kd", "--data", data, "--teacher", online_teacher),
        "train, 20 features": ("train", "--data", narrow_data)}
for name, cmd in runs.items():
    weights = []
    for held, env in HOLDINGS.items():
        out = kdcl.path(f"{name.replace(' ', '_')}-{held}.h5")
        run_spec = narrow_spec if narrow_data in cmd else mlp
        with_env(env, lambda: kdcl.run(*cmd, "--model", run_spec, "--out", out, "--epochs", 2,
                                       "--batch", 64, "--quiet"))
        weights.append(read_model(out))
    for w in weights[1:]:
        assert w.keys() == weights[0].keys()
        for k in w:
            assert np.array_equal(weights[0][k], w[k]), (name, k)
print("train and distill (dense, top-k, online, 20 features): the same weights from the set on the device, "
      "in host memory and streamed")

# Refusals: one error line each
kdcl.fails("bench", code=2, mentions=("gemm", "step"))
kdcl.fails("bench", "nope", code=2, mentions=("nope",))
kdcl.fails("bench", "gemm", "--m", 4, "--n", 4, code=2, mentions=("--k",))
kdcl.fails("bench", "gemm", "--m", 0, "--n", 4, "--k", 4, code=2, mentions=("--m",))
kdcl.fails("bench", "gemm", "--m", 4, "--n", 1048577, "--k", 4, code=2, mentions=("--n",))
kdcl.fails("bench", "gemm", "--m", 32768, "--n", 16384, "--k", 4, code=1, mentions=("2^28",))
kdcl.fails("bench", "gemm", "--m", 4, "--n", 4, "--k", 4, "--model", mlp, code=2,
           mentions=("--model", "bench gemm"))
kdcl.fails("bench", "step", code=2, mentions=("--model",))
kdcl.fails("bench", "step", "--model", mlp, "--ta", code=2, mentions=("--ta",))
kdcl.fails("bench", "step", "--model", mlp, "--loss", "nope", code=2, mentions=("--loss",))
kdcl.fails("bench", "step", "--model", mlp, "--steps", code=2, mentions=("--steps",))
kdcl.fails("bench", "step", "--model", kdcl.path("missing.json"), code=1, mentions=("missing.json",))
kdcl.fails("bench", "step", "--model", mlp, "--gemm", "fast", code=2, mentions=("--gemm",))
kdcl.fails("bench", "step", "--model", mlp, "--data", data, "--upload", code=2,
           mentions=("--upload", "--data"))
kdcl.fails("bench", "gemm", "--m", 4, "--n", 4, "--k", 4, "--data", data, code=2,
           mentions=("--data", "bench gemm"))
kdcl.fails("bench", "step", "--model", mlp, "--data", kdcl.path("missing.h5"), code=1,
           mentions=("missing.h5",))
no_teacher = kdcl.path("no-teacher.h5")
with h5py.File(data, "r") as src, h5py.File(no_teacher, "w") as dst:
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    src.copy("inputs", dst)
    src.copy("labels", dst)
kdcl.fails("bench", "step", "--model", mlp, "--data", no_teacher, "--loss", "kd", code=1,
           mentions=("no-teacher.h5", "/teacher"))
kdcl.fails("bench", "step", "--model", spec, "--data", data, code=1, mentions=("data.h5", "mixed"))
one_row = kdcl.path("one-row.h5")
with h5py.File(data, "r") as src, h5py.File(one_row, "w") as dst:
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    for name in ("inputs/x", "labels/y", "teacher/logits"):
        d = dst.create_dataset(name, data=src[name][:1])
        for k, v in src[name].attrs.items():
            d.attrs[k] = v
    for k, v in src["teacher"].attrs.items():
        dst["teacher"].attrs[k] = v
kdcl.fails("bench", "step", "--model", mlp, "--data", one_row, code=1,
           mentions=("one-row.h5 has 1 row,", "fewer than --batch 128"))
for var, value in (("KDCL_DATA_MEMORY", "lots"), ("KDCL_DATA_MEMORY", " 1"),
                   ("KDCL_DATA_MEMORY", "+1"), ("KDCL_DATA_MEMORY", "1 "), ("KDCL_DATA_MEMORY", "-0"),
                   ("KDCL_DATA_MEMORY", "0x10"), ("KDCL_DATA_MEMORY", "1099511627777"),
                   ("KDCL_DATA_ON_DEVICE", "yes"), ("KDCL_DATA_ON_DEVICE", "2"),
                   ("KDCL_DATA_ON_DEVICE", " 1"), ("KDCL_DATA_ON_DEVICE", "10")):
    with_env({var: value}, lambda: kdcl.fails(
        "distill", "--model", mlp, "--data", data, "--out", kdcl.path("never.h5"), code=1,
        mentions=(f"{var}={value}",)))
assert not os.path.exists(kdcl.path("never.h5"))
# the same strict digits are accepted (leading zeros are decimal), and empty means unset
for var, value in (("KDCL_DATA_MEMORY", "010"), ("KDCL_DATA_ON_DEVICE", "01"),
                   ("KDCL_DATA_MEMORY", "")):
    with_env({var: value}, lambda: kdcl.run("train", "--model", mlp, "--data", data, "--out",
                                            kdcl.path("env-ok.h5"), "--epochs", 1, "--quiet"))

# A compressed set streamed: a note says what it costs and what reads it faster
p = with_env({"KDCL_DATA_MEMORY": "0"}, lambda: kdcl.run(
    "train", "--model", mlp, "--data", data, "--out", kdcl.path("note.h5"), "--epochs", 1,
    "--batch", 64))
assert "is streamed" in p.stderr and "16 windows" in p.stderr and "h5repack" in p.stderr, p.stderr
p = kdcl.run("train", "--model", mlp, "--data", data, "--out", kdcl.path("note.h5"), "--epochs", 1)
assert "is streamed" not in p.stderr, p.stderr

# A streamed set cut short while a run reads it: libhdf5 would read the lost part as zeros,
# so the loader stops the run with one error line instead of training on them.
import shutil
import subprocess
import time
victim, log = kdcl.path("victim.h5"), kdcl.path("victim.jsonl")
shutil.copy(data, victim)
env = dict(os.environ, KDCL_DATA_MEMORY="0")
p = subprocess.Popen([kdcl.binary, "train", "--model", mlp, "--data", victim, "--out",
                      kdcl.path("victim-out.h5"), "--epochs", "100000", "--batch", "64", "--log", log,
                      "--log-every", "1", "--quiet"], env=env, stderr=subprocess.PIPE, text=True)
deadline = time.time() + 60
while not (os.path.exists(log) and os.path.getsize(log) > 0) and time.time() < deadline:
    time.sleep(0.05)
os.truncate(victim, os.path.getsize(victim) // 2)
try:
    _, stderr = p.communicate(timeout=120)
except subprocess.TimeoutExpired:
    p.kill()
    raise
lines = stderr.strip().splitlines()
assert p.returncode == 1 and len(lines) == 1 and "changed while it was being read" in lines[0], stderr
print("a streamed set cut short mid-run: one error line, exit 1")
print("bench: bad flags refused with one error line")
