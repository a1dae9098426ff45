#!/usr/bin/env python3
"""kdcl checkpoints in PyTorch: build the twin of a model spec and load a checkpoint into it.

The twin of a spec is a module whose attribute `layers` is the nn.Sequential of the listed
layers, so its state_dict keys are exactly a kdcl checkpoint's /model names.

    from kdcl_torch import load_checkpoint
    model = load_checkpoint("ckpt.h5")   # eval mode, weights loaded
"""
import json
import sys

import h5py
import torch
from torch import nn


class KdclModel(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(*build_layers(spec["input"], spec["layers"]))

    def forward(self, x):
        return self.layers(x)


def build_layers(input_shape, layer_specs):
    shape = list(input_shape)
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
            raise ValueError(f"layers[{i}]: layer type {kind!r} has no PyTorch twin here yet")
    return out


def read_spec(path):
    with h5py.File(path, "r") as f:
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
    """A kdcl dataset's inputs as float32 with its scale/mean/std applied, as kdcl does."""
    with h5py.File(path, "r") as f:
        x = f["inputs/x"]
        scale = float(x.attrs.get("scale", 1.0))
        mean = float(x.attrs.get("mean", 0.0))
        std = float(x.attrs.get("std", 1.0))
        data = torch.from_numpy(x[...].astype("float32"))
    return (data * scale - mean) / std


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: kdcl_torch.py CKPT.h5   (prints the PyTorch twin)")
    print(load_checkpoint(sys.argv[1]))
