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
    """A kdcl dataset's inputs as float32 [N, ...] with its scale/mean/std applied, as kdcl
    does (the model's forward reshapes them to its input shape)."""
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
