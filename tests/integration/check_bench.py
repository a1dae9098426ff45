"""kdcl bench gemm / bench step: --json prints exactly one object with the documented fields;
GEMM results agree with a double reference on every transpose and both back ends; a step of the
shipped MLP student runs as 7 launches with the built-in GEMM (dense+bias+activation fused);
bench step --data reports the three feeds, with the set held in memory or streamed, and training
from either gives the same weights; flags are checked."""
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
    r = one_json("bench", "step", "--model", mlp, "--loss", loss, "--steps", 6, "--warmup", 2,
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
    assert r["step_over_gemm"] > 1 and r["gemm_ms_per_step"] > 0
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


def bench_data(env_memory):
    if env_memory is None:
        os.environ.pop("KDCL_DATA_MEMORY", None)
    else:
        os.environ["KDCL_DATA_MEMORY"] = env_memory
    try:
        return one_json("bench", "step", "--model", mlp, "--loss", "kd", "--batch", 64,
                        "--data", data, "--steps", 40, "--rounds", 2, "--warmup", 2, "--json")
    finally:
        os.environ.pop("KDCL_DATA_MEMORY", None)


for env_memory, in_memory in ((None, True), ("0", False)):
    r = bench_data(env_memory)
    d = r["data"]
    assert d["path"] == data and d["rows"] == rows and d["teacher"] == "logits", d
    assert d["inputs"] == "uint8" and d["in_memory"] is in_memory, d
    assert d["rounds"] == 2 and d["steps_per_block"] == 20, d
    # 2 warm-up and 40 timed steps of 64 rows from 1000: the order starts again after 16 steps
    assert d["epochs_started"] == 3, d
    for f in ("resident_step_ms", "host_step_ms", "file_step_ms", "file_over_resident",
              "file_over_resident_of_medians", "host_over_resident"):
        assert d[f] > 0, (f, d)
    assert r["step_ms"] == d["resident_step_ms"] and r["batch"] == 64
print("bench step --data: held in memory and streamed, the three feeds' fields")

# The loader's two ways of reading give the same batches: distillation and training on the
# file held in memory and streamed from it end with identical weights.
for cmd in (("distill", "--loss", "kd"), ("train",)):
    weights = []
    for env_memory in (None, "0"):
        out = kdcl.path(f"{cmd[0]}-{env_memory}.h5")
        if env_memory is not None:
            os.environ["KDCL_DATA_MEMORY"] = env_memory
        try:
            kdcl.run(cmd[0], *cmd[1:], "--model", mlp, "--data", data, "--out", out, "--epochs", 2,
                     "--batch", 64, "--quiet")
        finally:
            os.environ.pop("KDCL_DATA_MEMORY", None)
        weights.append(read_model(out))
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert np.array_equal(weights[0][k], weights[1][k]), (cmd[0], k)
print("train and distill: the same weights from the file held in memory and streamed")

# Refusals: one error line each
kdcl.fails("bench", code=2, mentions=("gemm", "step"))
kdcl.fails("bench", "nope", code=2, mentions=("nope",))
kdcl.fails("bench", "gemm", "--m", 4, "--n", 4, code=2, mentions=("--k",))
kdcl.fails("bench", "gemm", "--m", 0, "--n", 4, "--k", 4, code=2, mentions=("--m",))
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
os.environ["KDCL_DATA_MEMORY"] = "lots"
try:
    kdcl.fails("distill", "--model", mlp, "--data", data, "--out", kdcl.path("never.h5"), code=1,
               mentions=("KDCL_DATA_MEMORY=lots",))
finally:
    os.environ.pop("KDCL_DATA_MEMORY", None)
print("bench: bad flags refused with one error line")
