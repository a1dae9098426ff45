#!/usr/bin/env python3
"""Prints the demo's comparison table: for each NAME=RUN_DIR (a kdcl --run-dir), the model, its
parameters, test accuracy and agreement with the teacher (from `kdcl eval --json` of its
checkpoints/latest.h5), and training time and samples/s (from its metrics.jsonl)."""
import json
import os
import subprocess
import sys

import h5py


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: demo_table.py KDCL TEST.h5 NAME=RUN_DIR ...")
    kdcl, test = sys.argv[1], sys.argv[2]
    rows = []
    for arg in sys.argv[3:]:
        name, run_dir = arg.split("=", 1)
        ckpt = os.path.join(run_dir, "checkpoints", "latest.h5")
        log = os.path.join(run_dir, "metrics.jsonl")
        ev = json.loads(subprocess.run([kdcl, "eval", "--checkpoint", ckpt, "--data", test, "--json"],
                                       check=True, capture_output=True, text=True).stdout)
        with h5py.File(ckpt, "r") as f:
            spec = json.loads(f["meta/model_config"][()])
            # trainable parameters: batch-norm running statistics are buffers, not parameters
            params = sum(d.size for name, d in f["model"].items()
                         if not name.endswith(("running_mean", "running_var", "num_batches_tracked")))
        records = [json.loads(line) for line in open(log)]
        epochs = [r for r in records if r["event"] == "epoch"]
        rates = [r["samples_per_s"] for r in records if r["event"] == "step"]
        rows.append((name, spec["name"], params, 100 * ev["accuracy"],
                     100 * ev.get("teacher_agreement", float("nan")),
                     epochs[-1]["elapsed_s"] if epochs else float("nan"),
                     sorted(rates)[len(rates) // 2] if rates else float("nan")))
    header = ("run", "model", "params", "test acc %", "agree %", "train s", "samples/s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:,} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.1f} | {r[6]:,.0f} |")


if __name__ == "__main__":
    main()
