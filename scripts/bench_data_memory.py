#!/usr/bin/env python3
"""Peak host memory of a distillation run against the rows of its dataset.

Writes WORK/fashion-mnist-10x.h5: the labelled Fashion-MNIST training set (60,000 rows with a
dense /teacher) tiled ten times to 600,000 rows, with the source's schema, attributes, chunk
shapes and compression. Then runs `kdcl distill` for one epoch on each file with the same
student, batch, loss and seed, alternating the two for --rounds rounds, and takes each run's
peak resident set size from the kernel (os.wait4's ru_maxrss: that child alone). Prints both
peaks (median over the rounds), their ratio and the run times.

Where no --source is given, the labelled training set is made in WORK first, as a user would:
`kdcl import fashion-mnist`, a one-epoch teacher (models/fmnist-mlp-256.json), `kdcl label`.

usage: /usr/bin/python3 scripts/bench_data_memory.py --work DIR [--kdcl build/kdcl]
           [--source LABELLED.h5] [--factor 10] [--rounds 3] [--model SPEC.json]
           [--batch 128] [--loss kd] [--epochs 1] [--json OUT.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def make_source(kdcl, work):
    """Fashion-MNIST imported, a one-epoch teacher trained, its logits written: the labelled set."""
    labelled = os.path.join(work, "fashion-mnist-train-labelled.h5")
    if os.path.exists(labelled):
        return labelled
    run([kdcl, "import", "fashion-mnist", "--out-dir", work])
    teacher = os.path.join(work, "teacher-mlp-256.h5")
    run([kdcl, "train", "--model", os.path.join(ROOT, "models", "fmnist-mlp-256.json"),
         "--data", os.path.join(work, "fashion-mnist-train.h5"), "--out", teacher,
         "--epochs", "1", "--quiet"])
    run([kdcl, "label", "--teacher", teacher, "--data",
         os.path.join(work, "fashion-mnist-train.h5"), "--out", labelled])
    return labelled


def tile_dataset(h5py, src_path, dst_path, factor):
    """dst = src with every dataset's rows repeated `factor` times (row i of dst is row
    i mod N of src), same attributes, chunk shapes, filters; written to NAME.tmp, renamed."""
    tmp = dst_path + ".tmp"
    with h5py.File(src_path, "r") as src, h5py.File(tmp, "w", libver=("earliest", "v108")) as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        n_rows = src["inputs/x"].shape[0]

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                g = dst.require_group(name)
                for k, v in obj.attrs.items():
                    g.attrs[k] = v
                return
            if obj.shape[0] != n_rows:
                raise SystemExit(f"{src_path}: {name} has {obj.shape[0]} rows, /inputs/x {n_rows}")
            data = obj[...]
            d = dst.create_dataset(name, shape=(n_rows * factor,) + obj.shape[1:], dtype=obj.dtype,
                                   chunks=obj.chunks, compression=obj.compression,
                                   compression_opts=obj.compression_opts, shuffle=obj.shuffle)
            for k, v in obj.attrs.items():
                d.attrs[k] = v
            for t in range(factor):
                d[t * n_rows:(t + 1) * n_rows] = data

        src.visititems(copy)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dst_path)


def distill_peak(kdcl, spec, data, out, args):
    """Runs one distillation; returns (peak RSS bytes of that process, seconds)."""
    cmd = [kdcl, "distill", "--model", spec, "--data", data, "--out", out, "--epochs",
           str(args.epochs), "--batch", str(args.batch), "--loss", args.loss, "--seed", "1",
           "--quiet"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"kdcl distill on {data} exited with {p.returncode}: {' '.join(cmd)}")
    return ru.ru_maxrss * 1024, secs  # ru_maxrss is KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="directory for the datasets and checkpoints")
    ap.add_argument("--kdcl", default=os.path.join(ROOT, "build", "kdcl"))
    ap.add_argument("--source", help="labelled training set (default: made in --work)")
    ap.add_argument("--factor", type=int, default=10, help="row multiple of the big file")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist-mlp-small.json"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--loss", default="kd")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    import h5py

    os.makedirs(args.work, exist_ok=True)
    kdcl = os.path.abspath(args.kdcl)
    source = os.path.abspath(args.source) if args.source else make_source(kdcl, args.work)
    big = os.path.join(args.work, f"fashion-mnist-{args.factor}x.h5")
    with h5py.File(source, "r") as f:
        rows = f["inputs/x"].shape[0]
        if "teacher" not in f:
            raise SystemExit(f"{source} has no /teacher: label it with 'kdcl label' first")
    fresh = os.path.exists(big) and os.path.getmtime(big) >= os.path.getmtime(source)
    if fresh:
        with h5py.File(big, "r") as f:
            fresh = f["inputs/x"].shape[0] == rows * args.factor
    if not fresh:
        t0 = time.perf_counter()
        tile_dataset(h5py, source, big, args.factor)
        print(f"wrote {big}: {rows * args.factor} rows ({os.path.getsize(big) / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    cases = [("1x", source, rows), (f"{args.factor}x", big, rows * args.factor)]
    peaks = {name: [] for name, _, _ in cases}
    secs = {name: [] for name, _, _ in cases}
    for r in range(args.rounds):
        for name, data, n in cases:
            out = os.path.join(args.work, f"student-{name}.h5")
            peak, s = distill_peak(kdcl, args.model, data, out, args)
            peaks[name].append(peak)
            secs[name].append(s)
            print(f"round {r + 1}: {name} ({n} rows) peak RSS {peak / 2**20:.1f} MiB, {s:.1f} s",
                  file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in peaks.items()}
    ratio = med[cases[1][0]] / med[cases[0][0]]
    print(f"kdcl distill --model {os.path.relpath(args.model, ROOT)} --batch {args.batch} "
          f"--loss {args.loss} --epochs {args.epochs}, median of {args.rounds} rounds:")
    for name, data, n in cases:
        print(f"  {name:>4} {n:>8} rows: peak RSS {med[name] / 2**20:7.1f} MiB "
              f"(rounds: {', '.join(f'{p / 2**20:.1f}' for p in peaks[name])}), "
              f"{statistics.median(secs[name]):.1f} s")
    print(f"  peak RSS {cases[1][0]} / {cases[0][0]} = {ratio:.3f} (target <= 1.10)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": {c[0]: c[2] for c in cases},
                       "peak_rss_bytes": peaks, "median_peak_rss_bytes": med,
                       "seconds": secs, "ratio": ratio, "model": args.model,
                       "batch": args.batch, "loss": args.loss, "epochs": args.epochs}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
