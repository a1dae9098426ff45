#!/usr/bin/env python3
"""kdcl checkpoints as ONNX models, exported through the PyTorch twin (kdcl_torch).

    kdcl_onnx.py CKPT.h5 [--out MODEL.onnx] [--opset N] [--check DATA.h5] [--kdcl PATH]

The model takes `input`, float32 [batch, *spec input] holding kdcl's normalised inputs
((x*scale - mean)/std, as kdcl applies them; a flat [batch, features] view of them works too),
and returns `logits`, float32 [batch, classes]; the batch axis is dynamic. The file is written to
MODEL.onnx.tmp and renamed over MODEL.onnx. With --check, onnxruntime (installed by
scripts/setup.sh into .venv: run this with .venv/bin/python) runs the exported model over DATA.h5
and its logits are compared with `kdcl predict`'s; the largest |difference| is printed and the
exit status is 1 above --tol (default 1e-4).

    import sys; sys.path.insert(0, "scripts")
    from kdcl_onnx import export_onnx
    export_onnx("ckpt.h5", "model.onnx")
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kdcl_torch import iter_inputs, kdcl_predict, load_checkpoint, max_abs_diff  # noqa: E402

DEFAULT_OPSET = 14  # torch 1.13's default; onnxruntime 1.16-1.18 run opsets up to 19-21


def export_onnx(checkpoint, out, opset=DEFAULT_OPSET):
    """Writes the checkpoint's model (eval mode) to `out` as ONNX, atomically. Returns the spec."""
    model = load_checkpoint(checkpoint)
    spec = model.spec
    example = torch.zeros(2, *spec["input"])
    tmp = out + ".tmp"
    try:
        with torch.no_grad():
            torch.onnx.export(model, example, tmp, input_names=["input"],
                              output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=opset, do_constant_folding=True)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return spec


def onnx_logits(model_path, data, batch=4096):
    """onnxruntime's logits for every row of a kdcl dataset: float32 numpy [N, C]."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeError("onnxruntime is not installed: run scripts/setup.sh and use "
                           ".venv/bin/python") from None
    import numpy as np
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape  # ["batch", *input]
    parts = []
    for _, x in iter_inputs(data, batch):
        x = x.numpy().reshape(x.shape[0], *shape[1:])
        parts.append(sess.run(["logits"], {"input": x})[0])
    return np.concatenate(parts)


def _main(argv):
    ap = argparse.ArgumentParser(prog="kdcl_onnx.py",
                                 description="Export a kdcl checkpoint to ONNX through PyTorch.")
    ap.add_argument("checkpoint", help="kdcl checkpoint (CKPT.h5)")
    ap.add_argument("--out", metavar="MODEL.onnx",
                    help="where to write (default: the checkpoint's name with .onnx)")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help=f"ONNX opset (default {DEFAULT_OPSET})")
    ap.add_argument("--check", metavar="DATA.h5",
                    help="run the model in onnxruntime over DATA.h5 and compare with kdcl predict")
    ap.add_argument("--kdcl", metavar="PATH", help="kdcl binary (default: $KDCL, build/kdcl, PATH)")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="largest |difference| accepted (default 1e-4)")
    args = ap.parse_args(argv)
    out = args.out or os.path.splitext(args.checkpoint)[0] + ".onnx"
    try:
        if os.path.exists(out) and os.path.samefile(out, args.checkpoint):
            raise ValueError(f"--out {out} is the checkpoint itself: choose another output file")
        export_onnx(args.checkpoint, out, args.opset)
        print(f"kdcl_onnx.py: wrote {out} (opset {args.opset})", file=sys.stderr)
        if not args.check:
            return 0
        ours = kdcl_predict(args.checkpoint, args.check, args.kdcl)
        ref = onnx_logits(out, args.check)
        diff = max_abs_diff(ours, ref)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        print(f"kdcl_onnx.py: error: {e}", file=sys.stderr)
        return 1
    ok = diff <= args.tol
    print(f"onnxruntime vs kdcl predict: max |diff| {diff:.3e} over {ours.shape[0]} rows x "
          f"{ours.shape[1]} classes ({'ok' if ok else 'FAIL'}: tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
