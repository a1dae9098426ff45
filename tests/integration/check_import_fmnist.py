"""Fashion-MNIST import: counts, shapes, normalisation, and refusals of damaged IDX files."""
import gzip
import os
import shutil
import sys

import h5py
import numpy as np

from common import Kdcl

k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path
SRC = "/usr/share/datasets/fashion-mnist"
NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

k.run("import", "fashion-mnist", "--out-dir", P("out"))
with h5py.File(P("out/fashion-mnist-train.h5"), "r") as f:
    x, y = f["inputs/x"], f["labels/y"]
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.uint8 and y.shape == (60000,)
    assert y.attrs["num_classes"] == 10 and set(np.unique(y[...])) == set(range(10))
    pixels = x[...]
    count = pixels.size
    s1 = float(pixels.sum(dtype=np.int64)) / 255
    s2 = float((pixels.astype(np.int64) ** 2).sum()) / 255 ** 2
    mean = s1 / count
    assert abs(float(x.attrs["mean"]) - mean) < 1e-5
    assert abs(float(x.attrs["std"]) - (s2 / count - mean ** 2) ** 0.5) < 1e-5
    assert abs(float(x.attrs["scale"]) - 1 / 255) < 1e-9
with gzip.open(os.path.join(SRC, NAMES[0])) as g:
    raw = np.frombuffer(g.read(), np.uint8, offset=16)
with h5py.File(P("out/fashion-mnist-train.h5"), "r") as f:
    assert np.array_equal(f["inputs/x"][:5].reshape(-1), raw[: 5 * 784])
with h5py.File(P("out/fashion-mnist-test.h5"), "r") as f:
    assert f["inputs/x"].shape == (10000, 1, 28, 28) and f["labels/y"].shape == (10000,)
print("imported 60000 + 10000 rows; pixels, labels and normalisation check out")


def damaged(name, data, mentions):
    src = P(f"src-{name}")
    os.makedirs(src)
    for n in NAMES:
        shutil.copy(os.path.join(SRC, n), src)
    with open(os.path.join(src, NAMES[0]), "wb") as f:
        f.write(data)
    out = P(f"out-{name}")
    k.fails("import", "fashion-mnist", "--src", src, "--out-dir", out, mentions=mentions)
    assert not os.path.exists(os.path.join(out, "fashion-mnist-train.h5"))


with gzip.open(os.path.join(SRC, NAMES[0])) as g:
    full = g.read()
damaged("truncated", gzip.compress(full[: len(full) // 3], compresslevel=1), ["train-images", "truncated"])
damaged("magic", gzip.compress(b"\x00\x00\x08\x01" + full[4:], compresslevel=1), ["train-images", "magic"])
damaged("notgzip", b"garbage" * 100, ["train-images"])
damaged("count", gzip.compress(full[:4] + (59999).to_bytes(4, "big") + full[8:16] + full[16:16 + 59999 * 784],
                              compresslevel=1),
        ["train-images", "60000"])
k.fails("import", "fashion-mnist", "--src", P("nowhere"), "--out-dir", P("x"), mentions=["nowhere"])
k.fails("import", "mnist-digits", "--out-dir", P("x"), code=2, mentions=["mnist-digits"])
print("damaged IDX files refused")
