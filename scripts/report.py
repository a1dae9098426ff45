#!/usr/bin/env python3
"""Writes a Markdown report comparing kdcl run directories: the figures of plot_run.py (runs
overlaid) and a table of each run's final metrics (from eval.json, else its last epoch record).

    scripts/report.py RUN_DIR [RUN_DIR ...] --out REPORT_DIR     (writes REPORT_DIR/report.md)
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_run import load_metrics, plot, run_labels  # noqa: E402


def read_object(path):
    """A JSON object file of a run directory, {} when it is missing; damage is one error line."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        sys.exit(f"report.py: error: {path}: not a readable JSON file ({e})")
    if not isinstance(obj, dict):
        sys.exit(f"report.py: error: {path}: not a JSON object")
    return obj


def final_metrics(run_dir, epochs):
    ev = read_object(os.path.join(run_dir, "eval.json"))
    last = epochs[-1] if epochs else {}
    recipe = read_object(os.path.join(run_dir, "recipe.json"))
    model = recipe.get("model")  # the spec itself, or a path to it
    name = model.get("name", "?") if isinstance(model, dict) else \
        os.path.splitext(os.path.basename(model))[0] if isinstance(model, str) else "?"
    return {
        "model": ev.get("model", name),
        "loss": ev.get("loss", recipe.get("loss", "ce")),
        "epochs": ev.get("epochs", last.get("epoch", "?")),
        "accuracy": ev.get("val_accuracy", last.get("val_accuracy")),
        "agreement": ev.get("val_teacher_agreement", last.get("val_teacher_agreement")),
        "val_loss": ev.get("val_loss", last.get("val_loss")),
        "train_loss": last.get("train_loss"),
        "time": ev.get("train_seconds", last.get("elapsed_s")),
    }


def fmt(v, scale=1.0, digits=2):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "–" if v is None else "?"  # a value of the wrong type in a damaged file
    return f"{scale * v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("runs", nargs="+", help="kdcl run directories (--run-dir)")
    ap.add_argument("--out", required=True, help="directory for report.md and its figures")
    args = ap.parse_args()
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        sys.exit(f"report.py: error: --out {args.out} exists and is not a directory")
    runs = {name: (r, load_metrics(r)) for name, r in zip(run_labels(args.runs), args.runs)}
    figures = plot({name: m for name, (_, m) in runs.items()}, args.out)
    lines = ["# kdcl run report", "", "| run | model | loss | epochs | val accuracy % | "
             "agreement with teacher % | val loss | train loss | time s |", "|" + "---|" * 9]
    for name, (run_dir, (_, epochs)) in runs.items():
        m = final_metrics(run_dir, epochs)
        lines.append(f"| {name} | {m['model']} | {m['loss']} | {m['epochs']} | "
                     f"{fmt(m['accuracy'], 100)} | {fmt(m['agreement'], 100)} | "
                     f"{fmt(m['val_loss'], 1, 4)} | {fmt(m['train_loss'], 1, 4)} | "
                     f"{fmt(m['time'], 1, 1)} |")
    lines.append("")
    for path in figures:
        lines += [f"![{os.path.basename(path)}]({os.path.basename(path)})", ""]
    report = os.path.join(args.out, "report.md")
    with open(report, "w") as f:
        f.write("\n".join(lines))
    print(report)


if __name__ == "__main__":
    main()
