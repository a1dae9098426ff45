#!/usr/bin/env python3
"""Plots one or more kdcl run directories (their metrics.jsonl) into PNG figures, runs overlaid:
training loss (each logged step faint, the epoch means bold, with the CE and KD parts when
distilling), validation accuracy, learning rate and samples/s against the step.

    scripts/plot_run.py RUN_DIR [RUN_DIR ...] --out FIGDIR
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        sys.exit(f"plot_run.py: error: {run_dir} has no metrics.jsonl (not a kdcl run directory?)")
    records = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
                record = json.loads(line) if line else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                sys.exit(f"plot_run.py: error: {path}:{n}: not valid JSON")
            if record is not None:
                if not isinstance(record, dict):
                    sys.exit(f"plot_run.py: error: {path}:{n}: not a JSON object")
                records.append(record)
    # A resumed run appends to the log and repeats the steps logged after its last checkpoint:
    # the later record of a step (or epoch) is the one the run continued from.
    def latest(event, key):
        kept = {}
        for r in records:
            if r.get("event") == event and key in r:
                kept[r[key]] = r
        return [kept[k] for k in sorted(kept)]
    return latest("step", "step"), latest("epoch", "epoch")


def run_labels(paths):
    """A label per run directory: its name, or as many trailing path parts as keep labels
    distinct (runs/kd and other/kd become runs/kd and other/kd, not kd twice)."""
    parts = [os.path.normpath(os.path.abspath(p)).split(os.sep) for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = [os.sep.join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [os.path.normpath(p) for p in paths]  # the same directory twice


def series(records, key):
    pts = [(r["step"], r[key]) for r in records if key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot(runs, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    figures = []

    def figure(name, title, ylabel, draw):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for label, (steps, epochs) in runs.items():
            draw(ax, label, steps, epochs)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        figures.append(path)

    def loss(ax, label, steps, epochs):
        # Each step record is one batch's loss (noisy): drawn faint; the epoch means bold.
        line, = ax.plot(*series(steps, "loss"), lw=0.6, alpha=0.3)
        c = line.get_color()
        ax.plot(*series(epochs, "train_loss"), "o-", color=c, ms=3, lw=1.4,
                label=f"{label}: loss (epoch mean)")
        xs, ys = series(epochs, "train_ce_loss")
        if xs:
            ax.plot(xs, ys, "--", color=c, lw=1.0, label=f"{label}: CE part")
            ax.plot(*series(epochs, "train_kd_loss"), ":", color=c, lw=1.2,
                    label=f"{label}: KD part")

    def accuracy(ax, label, steps, epochs):
        xs, ys = series(epochs, "val_accuracy")
        ax.plot(xs, [100 * y for y in ys], "o-", label=label, ms=3)

    figure("loss.png", "training loss", "loss (nats)", loss)
    figure("val_accuracy.png", "validation accuracy", "accuracy (%)", accuracy)
    figure("lr.png", "learning rate", "lr", lambda ax, label, s, e: ax.plot(*series(s, "lr"), label=label))
    def throughput(ax, label, steps, epochs):
        # Log scale: a teacher and its student differ by orders of magnitude. The dips are the
        # steps whose window holds an epoch end (validation, checkpoint).
        ax.plot(*series(steps, "samples_per_s"), label=label, lw=0.8)
        ax.set_yscale("log")

    figure("samples_per_s.png", "throughput", "samples/s (log scale)", throughput)
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("runs", nargs="+", help="kdcl run directories (--run-dir)")
    ap.add_argument("--out", required=True, help="directory for the PNG files")
    args = ap.parse_args()
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        sys.exit(f"plot_run.py: error: --out {args.out} exists and is not a directory")
    runs = {name: load_metrics(r) for name, r in zip(run_labels(args.runs), args.runs)}
    for path in plot(runs, args.out):
        print(path)


if __name__ == "__main__":
    main()
