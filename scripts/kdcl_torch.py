#!/usr/bin/env python3
"""kdcl checkpoints in PyTorch: build the twin of a model spec and load a checkpoint into it.

The twin of a spec is a module whose attribute `layers` is the nn.Sequential of the listed
layers, so its state_dict keys are exactly a kdcl checkpoint's /model names.

    from kdcl_torch import load_checkpoint
    model = load_checkpoint("ckpt.h5")   # eval mode, weights loaded

As a command:

    kdcl_torch.py CKPT.h5                               prints the PyTorch twin
    kdcl_torch.py CKPT.h5 --check DATA.h5 [--kdcl PATH] runs `kdcl predict` and the twin over
        DATA.h5, prints the largest |difference| of their logits, exits 1 above --tol (1e-4)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
from torch import nn


class KdclModel(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        layers, _ = build_layers(list(spec["input"]), spec["layers"])
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x.reshape(x.shape[0], *self.spec["input"]))


class GlobalAvgPool(nn.Module):
    """kdcl's global_avgpool: [N, C, H, W] -> [N, C]."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class Residual(nn.Module):
    """kdcl's residual block: layers(x) + x, or + projection(x) (1x1 conv, no bias)."""

    def __init__(self, input_shape, spec):
        super().__init__()
        layers, out_shape = build_layers(list(input_shape), spec["layers"])
        self.layers = nn.Sequential(*layers)
        if spec.get("projection", False):
            # the stride that maps the input onto the output, as kdcl picks it
            stride = next(s for s in range(1, input_shape[1] + 1)
                          if (input_shape[1] - 1) // s + 1 == out_shape[1]
                          and (input_shape[2] - 1) // s + 1 == out_shape[2])
            self.projection = nn.Conv2d(input_shape[0], out_shape[0], 1, stride=stride, bias=False)
        else:
            self.projection = None
        self.out_shape = out_shape

    def forward(self, x):
        skip = x if self.projection is None else self.projection(x)
        return self.layers(x) + skip


def _window(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def build_layers(shape, layer_specs):
    """The modules of a spec's layer list, and the output shape."""
    out = []
    for i, ls in enumerate(layer_specs):
        kind = ls["type"]
        if kind == "flatten":
            out.append(nn.Flatten())
            n = 1
            for d in shape:
                n *= d
            shape = [n]
        elif kind == "dense":
            out.append(nn.Linear(shape[0], ls["units"], bias=ls.get("bias", True)))
            shape = [ls["units"]]
        elif kind == "conv2d":
            k = ls["kernel"]
            kh, kw = (k, k) if isinstance(k, int) else k
            stride, pad = ls.get("stride", 1), ls.get("padding", 0)
            out.append(nn.Conv2d(shape[0], ls["filters"], (kh, kw), stride=stride, padding=pad,
                                 bias=ls.get("bias", True)))
            shape = [ls["filters"], _window(shape[1], kh, stride, pad),
                     _window(shape[2], kw, stride, pad)]
        elif kind in ("maxpool2d", "avgpool2d"):
            size = ls["size"]
            stride, pad = ls.get("stride", size), ls.get("padding", 0)
            cls = nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d
            out.append(cls(size, stride=stride, padding=pad))
            shape = [shape[0], _window(shape[1], size, stride, pad),
                     _window(shape[2], size, stride, pad)]
        elif kind == "global_avgpool":
            out.append(GlobalAvgPool())
            shape = [shape[0]]
        elif kind in ("batchnorm1d", "batchnorm2d"):
            cls = nn.BatchNorm1d if kind == "batchnorm1d" else nn.BatchNorm2d
            out.append(cls(shape[0], eps=ls.get("eps", 1e-5), momentum=ls.get("momentum", 0.1)))
        elif kind == "residual":
            block = Residual(shape, ls)
            out.append(block)
            shape = block.out_shape
        elif kind == "relu":
            out.append(nn.ReLU())
        elif kind == "gelu":
            out.append(nn.GELU())
        elif kind == "tanh":
            out.append(nn.Tanh())
        elif kind == "sigmoid":
            out.append(nn.Sigmoid())
        elif kind == "dropout":
            out.append(nn.Dropout(ls["rate"]))
        else:
            raise ValueError(f"layers[{i}]: unknown layer type {kind!r}")
    return out, shape


def read_spec(path):
    """The model spec (a dict) of a kdcl checkpoint; clear errors for other files."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path}: not an HDF5 file (a kdcl checkpoint is needed)")
    with h5py.File(path, "r") as f:
        if not isinstance(f.get("meta/model_config"), h5py.Dataset) or "model" not in f:
            raise ValueError(f"{path}: no /meta/model_config and /model (not a kdcl checkpoint)")
        text = f["meta/model_config"][()]
    return json.loads(text.decode() if isinstance(text, bytes) else text)


def read_state_dict(path):
    with h5py.File(path, "r") as f:
        return {k: torch.from_numpy(d[...]) for k, d in f["model"].items()}


def load_checkpoint(path):
    """The model of a kdcl checkpoint, weights loaded, in eval mode."""
    model = KdclModel(read_spec(path))
    model.load_state_dict(read_state_dict(path))
    return model.eval()


def dataset_inputs(path):
    """A kdcl dataset's inputs as float32 [N, ...] with its scale/mean/std applied, as kdcl
    does (the model's forward reshapes them to its input shape)."""
    with h5py.File(path, "r") as f:
        x = f["inputs/x"]
        scale = float(x.attrs.get("scale", 1.0))
        mean = float(x.attrs.get("mean", 0.0))
        std = float(x.attrs.get("std", 1.0))
        data = torch.from_numpy(x[...].astype("float32"))
    return (data * scale - mean) / std


def iter_inputs(path, batch=4096):
    """dataset_inputs in slices of `batch` rows: (start, float32 tensor [rows, ...])."""
    with h5py.File(path, "r") as f:
        x = f["inputs/x"]
        scale = float(x.attrs.get("scale", 1.0))
        mean = float(x.attrs.get("mean", 0.0))
        std = float(x.attrs.get("std", 1.0))
        for start in range(0, x.shape[0], batch):
            data = torch.from_numpy(x[start:start + batch].astype("float32"))
            yield start, (data * scale - mean) / std


def torch_logits(model, path, batch=4096):
    """A model's logits over every row of a kdcl dataset: float32 numpy [N, C]."""
    parts = []
    with torch.no_grad():
        for _, x in iter_inputs(path, batch):
            parts.append(model(x).float().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def find_kdcl(path=None):
    """The kdcl binary: `path`, else $KDCL, else build/kdcl beside scripts/, else kdcl on PATH."""
    def runnable(p):
        return os.path.isfile(p) and os.access(p, os.X_OK)

    explicit = path or os.environ.get("KDCL")
    if explicit:
        if not runnable(explicit):
            raise FileNotFoundError(f"{explicit}: not an executable kdcl binary")
        return explicit
    local = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "kdcl")
    if runnable(local):
        return os.path.normpath(local)
    found = shutil.which("kdcl")
    if not found:
        raise FileNotFoundError("kdcl binary not found: build it (scripts/build.sh) or pass --kdcl")
    return found


def kdcl_predict(checkpoint, data, kdcl=None):
    """`kdcl predict`'s logits for a checkpoint over a dataset: float32 numpy [N, C]. Raises
    RuntimeError with kdcl's error line when it fails."""
    binary = find_kdcl(kdcl)
    with tempfile.TemporaryDirectory(prefix="kdcl-check-") as tmp:
        out = os.path.join(tmp, "logits.h5")
        p = subprocess.run([binary, "predict", "--checkpoint", checkpoint, "--data", data,
                            "--out", out], capture_output=True, text=True)
        if p.returncode != 0:
            msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
            raise RuntimeError("kdcl predict: " + msg.removeprefix("kdcl: error: "))
        with h5py.File(out, "r") as f:
            return f["logits"][...]


def max_abs_diff(a, b):
    """The largest |a - b| over two logit arrays of one shape (ValueError when they differ)."""
    if a.shape != b.shape:
        raise ValueError(f"logits of shape {list(a.shape)} and {list(b.shape)} cannot be compared")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def _main(argv):
    ap = argparse.ArgumentParser(
        prog="kdcl_torch.py",
        description="Print the PyTorch twin of a kdcl checkpoint, or check that it reproduces "
                    "`kdcl predict`.")
    ap.add_argument("checkpoint", help="kdcl checkpoint (CKPT.h5)")
    ap.add_argument("--check", metavar="DATA.h5",
                    help="compare the twin's logits with kdcl predict's over this dataset")
    ap.add_argument("--kdcl", metavar="PATH", help="kdcl binary (default: $KDCL, build/kdcl, PATH)")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="largest |difference| accepted (default 1e-4)")
    args = ap.parse_args(argv)
    try:
        model = load_checkpoint(args.checkpoint)
        if not args.check:
            print(model)
            return 0
        ours = kdcl_predict(args.checkpoint, args.check, args.kdcl)
        ref = torch_logits(model, args.check)
        diff = max_abs_diff(ours, ref)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        print(f"kdcl_torch.py: error: {e}", file=sys.stderr)
        return 1
    ok = diff <= args.tol
    print(f"PyTorch vs kdcl predict: max |diff| {diff:.3e} over {ours.shape[0]} rows x "
          f"{ours.shape[1]} classes ({'ok' if ok else 'FAIL'}: tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
