#!/usr/bin/env python3
"""kdcl's GEMM (`kdcl bench gemm`) against OpenBLAS sgemm (NumPy) on the same threads, in one run.

Shapes: 512/1024/2048 squares (NN); the dense layers of the shipped MLPs at batch 128 with the
three transposes the layers use: NT forward (y = x w^T), NN for the input gradient (dx = dy w),
TN for the weight gradient (dw = dy^T x); and the GEMMs of models/fmnist-cnn.json at batch 128:
its convolutions as host/nn/conv.c lowers them (im2col over chunks of images: NN forward
Y = w col, NT weight gradient dw = D col^T, TN column gradient dcol = w^T D; the chunk size as
its chunk_images computes it) and its dense head. Both sides are timed alike: each sample runs calls back
to back for ~10 ms and the best and median of the samples are kept.

OpenBLAS runs with its own CPU detection: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from
the environment before NumPy loads it (the environment pins an older core type), and the kernel
it picked is printed from threadpoolctl. Needs Debian's libopenblas0-pthread and
python3-threadpoolctl (installed with --install when missing; NumPy falls back to the reference
BLAS without them).

usage: scripts/bench_gemm_vs_openblas.py [--kdcl build/kdcl] [--threads 2] [--repeat 10]
                                         [--quick] [--install] [--json OUT.json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SQUARES = [(512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048)]
# (name, batch, in, out): dense layers of models/fmnist-mlp-small.json, -256 and -wide.
MLP_LAYERS = [
    ("mlp-small.0", 128, 784, 64), ("mlp-small.1", 128, 64, 10),
    ("mlp-256.0", 128, 784, 256), ("mlp-256.1", 128, 256, 10),
    ("mlp-wide.0", 128, 784, 1024), ("mlp-wide.1", 128, 1024, 1024),
]


# (name, in channels, out channels, output pixels) of fmnist-cnn's 3x3 convolutions (padding 1):
# conv0 on 28x28, conv1 on 14x14, the residual stage's two on 7x7; then its dense head.
CNN_CONVS = [("cnn.conv0", 1, 32, 784), ("cnn.conv1", 32, 64, 196), ("cnn.res", 64, 64, 49)]
CNN_DENSE = [("cnn.fc0", 128, 3136, 128), ("cnn.fc1", 128, 128, 10)]
CONV_CHUNK_FLOATS = 1 << 20  # KD_CONV_CHUNK_FLOATS in host/nn/conv.c


def dense_shapes(name, b, i, o, first):
    out = [(f"{name} fwd", b, o, i, "NT")]      # y[B,out] = x[B,in] w[out,in]^T
    if not first:                                # the first layer needs no dx
        out.append((f"{name} dx", b, i, o, "NN"))   # dx[B,in] = dy[B,out] w[out,in]
    out.append((f"{name} dw", o, i, b, "TN"))       # dw[out,in] = dy[B,out]^T x[B,in]
    return out


def shapes(quick):
    out = [(f"square {m}", m, n, k, "NN") for m, n, k in SQUARES[: 2 if quick else 3]]
    for name, b, i, o in MLP_LAYERS:
        out += dense_shapes(name, b, i, o, name.endswith(".0"))
    for name, c, o, p in CNN_CONVS:
        k = 9 * c                                   # im2col rows: C * 3 * 3
        n = min(CONV_CHUNK_FLOATS // (k * p), 128) * p   # a chunk of images' pixels
        out.append((f"{name} fwd", o, n, k, "NN"))  # Y[O,N] = w[O,K] col[K,N]
        out.append((f"{name} dw", o, k, n, "NT"))   # dw[O,K] = D[O,N] col[K,N]^T
        if name != "cnn.conv0":                     # the first layer needs no dx
            out.append((f"{name} dx", k, n, o, "TN"))   # dcol[K,N] = w[O,K]^T D[O,N]
    for name, b, i, o in CNN_DENSE:
        out += dense_shapes(name, b, i, o, False)
    return out


def ensure_packages(install):
    need = []
    for pkg in ("libopenblas0-pthread", "python3-threadpoolctl"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            need.append(pkg)
    if not need:
        return
    if not install:
        sys.exit(f"bench_gemm_vs_openblas: missing Debian packages {' '.join(need)}; "
                 f"rerun with --install or apt-get install them")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + need,
                   check=True, env=env)


def time_numpy(np, m, n, k, op, threads, repeat):
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (k, m) if op[0] == "T" else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if op[1] == "T" else (k, n)).astype(np.float32)
    a_op = a.T if op[0] == "T" else a   # transposed views: NumPy hands BLAS the transpose flag
    b_op = b.T if op[1] == "T" else b
    c = np.empty((m, n), np.float32)
    np.matmul(a_op, b_op, out=c)
    t0 = time.perf_counter()
    np.matmul(a_op, b_op, out=c)
    once = time.perf_counter() - t0
    calls = max(1, min(10000, int(0.010 / max(once, 1e-7)) + 1))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(calls):
            np.matmul(a_op, b_op, out=c)
        samples.append((time.perf_counter() - t0) / calls)
    flop = 2.0 * m * n * k
    return flop / min(samples) / 1e9, flop / statistics.median(samples) / 1e9


def time_kdcl(kdcl, m, n, k, op, repeat, env):
    cmd = [kdcl, "bench", "gemm", "--m", str(m), "--n", str(n), "--k", str(k),
           "--repeat", str(repeat), "--gemm", "builtin", "--json"]
    if op[0] == "T":
        cmd.append("--ta")
    if op[1] == "T":
        cmd.append("--tb")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench_gemm_vs_openblas: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kdcl", default=os.environ.get("KDCL", os.path.join(ROOT, "build", "kdcl")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="skip 2048^3")
    ap.add_argument("--install", action="store_true", help="apt-get install what is missing")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if not shutil.which(args.kdcl) and not os.access(args.kdcl, os.X_OK):
        sys.exit(f"bench_gemm_vs_openblas: no kdcl binary at {args.kdcl} (build it, or --kdcl)")
    ensure_packages(args.install)

    # OpenBLAS reads these when it loads: drop the pinned core type before NumPy is imported.
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(var, None)
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits
    threadpool_limits(args.threads)
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    info = blas[0] if blas else {}
    if info.get("internal_api") != "openblas":
        sys.exit(f"bench_gemm_vs_openblas: NumPy's BLAS is {info or 'unknown'}, not OpenBLAS "
                 f"(install libopenblas0-pthread)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    env = dict(os.environ, POCL_MAX_PTHREAD_COUNT=str(args.threads))
    print(f"CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    print(f"OpenBLAS {info.get('version')} core type {info.get('architecture')}, "
          f"{info.get('num_threads')} threads; kdcl built-in GEMM on PoCL, "
          f"POCL_MAX_PTHREAD_COUNT={args.threads}")
    hdr = f"{'shape':<18} {'op':<3} {'M':>5} {'N':>5} {'K':>5} | {'kdcl GF/s':>10} {'OpenBLAS':>9} " \
          f"{'ratio':>6} | {'kdcl med':>8} {'OB med':>7} {'ratio':>6} | {'rel err':>8}"
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for name, m, n, k, op in shapes(args.quick):
        kd = time_kdcl(args.kdcl, m, n, k, op, args.repeat, env)
        ob_best, ob_med = time_numpy(np, m, n, k, op, args.threads, args.repeat)
        row = dict(shape=name, op=op, m=m, n=n, k=k, kdcl_best=kd["best_gflops"],
                   kdcl_median=kd["median_gflops"], openblas_best=ob_best,
                   openblas_median=ob_med, ratio_best=kd["best_gflops"] / ob_best,
                   ratio_median=kd["median_gflops"] / ob_med, kdcl_rel_err=kd["max_rel_err"])
        rows.append(row)
        print(f"{name:<18} {op:<3} {m:>5} {n:>5} {k:>5} | {row['kdcl_best']:>10.1f} "
              f"{ob_best:>9.1f} {row['ratio_best']:>6.2f} | {row['kdcl_median']:>8.1f} "
              f"{ob_med:>7.1f} {row['ratio_median']:>6.2f} | {row['kdcl_rel_err']:>8.1e}",
              flush=True)
    big = [r["ratio_best"] for r in rows if r["m"] * r["n"] * r["k"] >= 128 * 64 * 784]
    print(f"ratio kdcl/OpenBLAS (best): min {min(r['ratio_best'] for r in rows):.2f}, "
          f"min over shapes of >= 6.4 MFLOP {min(big):.2f}, "
          f"geometric mean {statistics.geometric_mean([r['ratio_best'] for r in rows]):.2f}; "
          f"load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu, openblas=info, threads=args.threads, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
