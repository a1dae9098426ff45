"""Helpers for the integration tests: run kdcl, write datasets and specs with h5py."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np

SOURCE_DIR = os.environ["KDCL_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SOURCE_DIR, "scripts"))


class Kdcl:
    def __init__(self, binary, work):
        self.binary = binary
        self.work = work

    def path(self, name):
        return os.path.join(self.work, name)

    def run(self, *args, expect=0):
        p = subprocess.run([self.binary, *map(str, args)], capture_output=True, text=True)
        if p.returncode != expect:
            raise AssertionError(
                f"kdcl {' '.join(map(str, args))}: exit {p.returncode}, expected {expect}\n"
                f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def fails(self, *args, code=1, mentions=()):
        """Runs a command that must fail with one 'kdcl: error:' line naming `mentions`."""
        p = self.run(*args, expect=code)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("kdcl: error: "), \
            f"kdcl {' '.join(map(str, args))}: expected one error line, got:\n{p.stderr}"
        for m in mentions:
            assert m in lines[0], f"error line does not mention {m!r}: {lines[0]}"
        return lines[0]


def write_dataset(path, x, y, num_classes, scale=None, mean=None, std=None, fmt=True):
    with h5py.File(path, "w") as f:
        if fmt:
            f.attrs["format"] = "kdcl-dataset"
            f.attrs["format_version"] = np.array([1, 0], dtype=np.int32)
        d = f.create_dataset("inputs/x", data=x)
        for k, v in (("scale", scale), ("mean", mean), ("std", std)):
            if v is not None:
                d.attrs[k] = np.float32(v)
        l = f.create_dataset("labels/y", data=np.asarray(y, dtype=np.int32))
        l.attrs["num_classes"] = np.int32(num_classes)


def write_spec(path, spec):
    with open(path, "w") as f:
        json.dump(spec, f)


def clusters(n, dim, classes, seed, spread=1.0):
    """Gaussian clusters around fixed centres: a separable problem."""
    rng = np.random.default_rng(1234)
    centres = rng.choice([-3.0, 3.0], size=(classes, dim))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = centres[y] + spread * rng.standard_normal((n, dim))
    return x.astype(np.float32), y.astype(np.int32)


def read_model(path):
    with h5py.File(path, "r") as f:
        return {k: d[...] for k, d in f["model"].items()}
