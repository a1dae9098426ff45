#!/usr/bin/env python3
"""Teacher outputs from a PyTorch model, written into a kdcl dataset's /teacher.

    teacher_logits_torch.py --model MODEL --data DATA.h5 [--topk K] [--out OUT.h5]
                            [--teacher-id ID] [--batch B]

MODEL is a TorchScript file (torch.jit.save / torch.jit.script), a whole module saved with
torch.save (its class must be importable), or a kdcl checkpoint (run through kdcl_torch). It is
run in eval mode, without gradients, over every row of DATA.h5; it receives the rows as kdcl
trains on them: float32 (x*scale - mean)/std with /inputs/x's attributes, shaped as /inputs/x
([B, features] or [B, C, H, W]), and must return logits [B, classes], classes being
/labels/y's num_classes. /teacher gets dense logits (kind "logits"), or with --topk K the K
largest log-softmax values and their classes, sorted descending (kind "topk"), as
`kdcl label` writes them. Any /teacher already there is replaced.

Crash-safe: the result is written to a copy (OUT.h5.tmp, or DATA.h5.tmp when updating DATA.h5 in
place), fsynced and renamed over the target, so a killed run leaves the target as it was.
"""
import argparse
import os
import shutil
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kdcl_torch import iter_inputs, load_checkpoint  # noqa: E402


def load_model(path):
    """A PyTorch model in eval mode from a kdcl checkpoint, a TorchScript file or a torch.save'd
    module."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if h5py.is_hdf5(path):
        return load_checkpoint(path)
    try:
        model = torch.jit.load(path, map_location="cpu")
    except RuntimeError:
        try:
            model = torch.load(path, map_location="cpu")
        except Exception as e:  # pickle and zip errors have no common base class
            raise ValueError(f"{path}: neither a kdcl checkpoint, a TorchScript file nor a "
                             f"saved module ({e})") from None
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"{path}: holds a {type(model).__name__} object, not a module (a "
                             f"state_dict needs its model class: load it and torch.jit.script it)")
    return model.eval()


def teacher_outputs(model, data, topk=0, batch=1024):
    """The model's outputs over every row of a kdcl dataset: logits [N, C] float32, or with
    topk=K (top-K indices int32 [N, K], log-probabilities float32 [N, K], sorted descending).
    Raises ValueError when the model's output does not fit the dataset."""
    with h5py.File(data, "r") as f:
        for name in ("inputs/x", "labels/y"):
            if not isinstance(f.get(name), h5py.Dataset):
                raise ValueError(f"{data}: no dataset /{name} (not a kdcl dataset?)")
        if "num_classes" not in f["labels/y"].attrs:
            raise ValueError(f"{data}: /labels/y has no attribute num_classes")
        n = f["inputs/x"].shape[0]
        classes = int(f["labels/y"].attrs["num_classes"])
    if topk and not 1 <= topk <= classes:
        raise ValueError(f"--topk {topk}: must be between 1 and the {classes} classes")
    cols = topk or classes
    first = np.zeros((n, cols), np.int32 if topk else np.float32)
    logp_all = np.zeros((n, cols), np.float32) if topk else None
    with torch.no_grad():
        for start, x in iter_inputs(data, batch):
            z = model(x)
            if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[0] != x.shape[0] \
                    or z.shape[1] != classes:
                got = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                raise ValueError(f"the model returned {got} for a batch of {x.shape[0]} rows; "
                                 f"{data} needs logits [{x.shape[0]}, {classes}]")
            z = z.float()
            if not torch.isfinite(z).all():
                raise ValueError(f"the model returned NaN or Inf logits for rows from {start}")
            rows = slice(start, start + z.shape[0])
            if topk:
                # sorted descending; ties keep the lower class first, as kdcl label does
                logp = torch.log_softmax(z.double(), dim=1)
                order = torch.sort(-logp, dim=1, stable=True).indices[:, :topk]
                first[rows] = order.int().numpy()
                logp_all[rows] = torch.gather(logp, 1, order).float().numpy()
            else:
                first[rows] = z.numpy()
    return (first, logp_all) if topk else first


def write_teacher(data, out, outputs, topk, teacher_id):
    """Writes /teacher into a copy of `data` and renames it over `out` (which may be `data`)."""
    tmp = out + ".tmp"
    try:
        shutil.copyfile(data, tmp)
        with h5py.File(tmp, "r+") as f:
            if "teacher" in f:
                del f["teacher"]
            g = f.create_group("teacher")
            g.attrs["kind"] = "topk" if topk else "logits"
            g.attrs["teacher_id"] = teacher_id
            if topk:
                idx, logp = outputs
                g.attrs["num_classes"] = np.int32(int(f["labels/y"].attrs["num_classes"]))
                g.attrs["k"] = np.int32(topk)
                g.create_dataset("topk_idx", data=idx)
                g.create_dataset("topk_logp", data=logp)
            else:
                g.attrs["num_classes"] = np.int32(outputs.shape[1])
                g.attrs["k"] = np.int32(outputs.shape[1])
                g.create_dataset("logits", data=outputs)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
        dfd = os.open(os.path.dirname(os.path.abspath(out)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _main(argv):
    ap = argparse.ArgumentParser(
        prog="teacher_logits_torch.py",
        description="Write a PyTorch model's outputs over a kdcl dataset into its /teacher.")
    ap.add_argument("--model", required=True,
                    help="TorchScript file, torch.save'd module, or kdcl checkpoint (.h5)")
    ap.add_argument("--data", required=True, help="kdcl dataset (DATA.h5)")
    ap.add_argument("--out", help="write a copy with /teacher here instead of updating DATA.h5")
    ap.add_argument("--topk", type=int, default=0, metavar="K",
                    help="store the top K log-probabilities only (default: dense logits)")
    ap.add_argument("--teacher-id", help="recorded as /teacher attr teacher_id (default: the "
                                         "model file's name)")
    ap.add_argument("--batch", type=int, default=1024, help="rows per forward pass (default 1024)")
    args = ap.parse_args(argv)
    if args.batch < 1:
        ap.error("--batch must be at least 1")
    out = args.out or args.data
    try:
        if args.out and os.path.exists(args.out) and os.path.samefile(args.out, args.model):
            raise ValueError(f"--out {args.out} is the model file: choose another output file")
        if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            raise ValueError(f"--out {out}: its directory does not exist")
        if not os.path.isfile(args.data):
            raise ValueError(f"{args.data}: no such file")
        if not h5py.is_hdf5(args.data):
            raise ValueError(f"{args.data}: not an HDF5 file (a kdcl dataset is needed)")
        model = load_model(args.model)
        outputs = teacher_outputs(model, args.data, args.topk, args.batch)
        write_teacher(args.data, out, outputs, args.topk,
                      args.teacher_id or os.path.basename(args.model))
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        print(f"teacher_logits_torch.py: error: {e}", file=sys.stderr)
        return 1
    n, cols = (outputs[0] if args.topk else outputs).shape
    what = f"top-{args.topk} log-probabilities" if args.topk else "logits"
    print(f"teacher_logits_torch.py: wrote /teacher ({what}, {n} rows x {cols}) to {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
