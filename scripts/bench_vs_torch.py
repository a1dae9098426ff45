#!/usr/bin/env python3
"""kdcl against PyTorch on the CPU: the same model, batch, loss and optimizer, run in one go.

For each case the PyTorch twin of the spec (scripts/kdcl_torch.py) trains on a synthetic batch
held in memory (random inputs, labels and teacher logits, as `kdcl bench step` uses): zero_grad,
forward, loss, backward, AdamW step (torch.optim defaults, as kdcl's). kdcl runs the same step
through `kdcl bench step --json`. Both sides use the same threads (torch.set_num_threads, PoCL's
POCL_MAX_PTHREAD_COUNT) and are timed alike: warm-up steps, then chunks of steps, the median
chunk. The two alternate for --rounds rounds; the table shows every round, the median of the
rounds' ratios, and the ratio of each side's best round (the figure least disturbed by other
load: PyTorch's OpenMP threads slow down by 10-100x when another process takes a core, so run it
on a quiet machine and check the load average it prints).

Cases: the MLP student distillation step (models/fmnist-mlp-small.json, --loss kd, T = 4,
alpha = 0.5), the same with labels only, the 256-unit MLP, and the CNN teacher
(models/fmnist-cnn.json). PyTorch's BLAS (OpenBLAS, Debian's libopenblas0-pthread) runs with its
own CPU detection: OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are dropped before torch loads it.

usage: /usr/bin/python3 scripts/bench_vs_torch.py [--kdcl build/kdcl] [--threads 2]
           [--rounds 3] [--cases mlp-kd,mlp-ce,mlp-256,cnn] [--profile] [--omp-passive]
           [--json OUT.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(var, None)  # before torch loads OpenBLAS
if "--omp-passive" in sys.argv[1:]:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # before torch loads libgomp

CASES = {
    # name: (spec, loss, timed steps, warm-up steps)
    "mlp-kd": ("models/fmnist-mlp-small.json", "kd", 400, 40),
    "mlp-ce": ("models/fmnist-mlp-small.json", "ce", 400, 40),
    "mlp-256": ("models/fmnist-mlp-256.json", "kd", 200, 20),
    "cnn": ("models/fmnist-cnn.json", "kd", 10, 2),
}
TEMPERATURE, ALPHA = 4.0, 0.5  # kdcl's defaults


def torch_step_time(torch, spec, loss, batch, steps, warmup, threads):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from kdcl_torch import KdclModel
    import torch.nn.functional as F
    torch.manual_seed(1)
    model = KdclModel(spec).train()
    opt = torch.optim.AdamW(model.parameters())
    classes = None
    x = torch.randn(batch, *spec["input"])
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    y = torch.randint(0, classes, (batch,))
    teacher = torch.rand(batch, classes) * 6 - 3
    t_soft = F.softmax(teacher / TEMPERATURE, dim=1)

    def step():
        opt.zero_grad(set_to_none=True)
        z = model(x)
        ce = F.cross_entropy(z, y)
        if loss == "ce":
            total = ce
        else:
            kd = F.kl_div(F.log_softmax(z / TEMPERATURE, dim=1), t_soft,
                          reduction="batchmean") * TEMPERATURE ** 2
            total = ALPHA * ce + (1 - ALPHA) * kd
        total.backward()
        opt.step()

    for _ in range(warmup):
        step()
    chunks = []
    per = max(1, steps // 5)
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per):
            step()
        chunks.append((time.perf_counter() - t0) / per)
    return statistics.median(chunks), min(chunks)


def kdcl_step(kdcl, spec_path, loss, batch, steps, warmup, env):
    cmd = [kdcl, "bench", "step", "--model", spec_path, "--batch", str(batch), "--loss", loss,
           "--steps", str(steps), "--warmup", str(warmup), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench_vs_torch: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kdcl", default=os.environ.get("KDCL", os.path.join(ROOT, "build", "kdcl")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="mlp-kd,mlp-ce,mlp-256,cnn")
    ap.add_argument("--profile", action="store_true",
                    help="print kdcl's kernel profile for each case (what limits it)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--omp-passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE for PyTorch: its spinning OpenMP threads slow "
                         "down 10-100x when other processes hold the cores (a shared machine)")
    args = ap.parse_args()
    if not os.access(args.kdcl, os.X_OK):
        sys.exit(f"bench_vs_torch: no kdcl binary at {args.kdcl} (build it, or --kdcl)")
    cases = args.cases.split(",")
    for c in cases:
        if c not in CASES:
            sys.exit(f"bench_vs_torch: unknown case {c!r} (have {', '.join(CASES)})")

    import torch
    torch.set_num_threads(args.threads)
    env = dict(os.environ, POCL_MAX_PTHREAD_COUNT=str(args.threads))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores, {args.threads} threads each side; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'default')}); kdcl {args.kdcl}; "
          f"batch {args.batch}, AdamW, kd: T={TEMPERATURE:g} alpha={ALPHA:g}")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print("warning: the machine is busy (load average above); PyTorch's figures will be "
              "noisy (try --omp-passive, or a quiet machine)")
    hdr = f"{'case':<8} {'round':>5} | {'kdcl samples/s':>14} {'torch samples/s':>15} {'ratio':>6} " \
          f"| {'kdcl ms':>8} {'torch ms':>8} {'launches':>8}"
    print(hdr)
    print("-" * len(hdr))
    results = []
    for name in cases:
        spec_rel, loss, steps, warmup = CASES[name]
        spec_path = os.path.join(ROOT, spec_rel)
        with open(spec_path) as f:
            spec = json.load(f)
        ratios, last, best_k, best_t = [], None, 0.0, 0.0
        for rnd in range(args.rounds):
            kd = kdcl_step(args.kdcl, spec_path, loss, args.batch, steps, warmup, env)
            t_med, _ = torch_step_time(torch, spec, loss, args.batch, steps, warmup, args.threads)
            t_rate = args.batch / t_med
            ratio = kd["samples_per_s"] / t_rate
            ratios.append(ratio)
            best_k = max(best_k, kd["samples_per_s"])
            best_t = max(best_t, t_rate)
            last = kd
            results.append(dict(case=name, round=rnd, kdcl_samples_per_s=kd["samples_per_s"],
                                torch_samples_per_s=t_rate, ratio=ratio,
                                kdcl_step_ms=kd["step_ms"], torch_step_ms=t_med * 1e3,
                                kdcl_launches_per_step=kd["launches_per_step"]))
            print(f"{name:<8} {rnd + 1:>5} | {kd['samples_per_s']:>14.0f} {t_rate:>15.0f} "
                  f"{ratio:>6.2f} | {kd['step_ms']:>8.3f} {t_med * 1e3:>8.3f} "
                  f"{kd['launches_per_step']:>8.0f}", flush=True)
        print(f"{name:<8} {'all':>5} | kdcl/PyTorch: median of rounds {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}); best of each side "
              f"{best_k:.0f} / {best_t:.0f} = {best_k / best_t:.2f}")
        results.append(dict(case=name, round="best", kdcl_samples_per_s=best_k,
                            torch_samples_per_s=best_t, ratio=best_k / best_t))
        if args.profile and last:
            gemm = last["gemm_ms_per_step"]
            print(f"         kdcl profile: step {last['step_ms']:.3f} ms, kernels "
                  f"{last['kernel_ms_per_step']:.3f} ms, GEMM {gemm:.3f} ms "
                  f"(step/GEMM {last['step_ms'] / gemm if gemm else float('nan'):.2f}); top kernels:")
            for k in last["kernels"][:6]:
                print(f"           {k['name']:<36} {k['launches_per_step']:>6.1f} launches "
                      f"{k['ms_per_step']:>8.3f} ms {100 * k['share']:>5.1f}%")
    print(f"load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu, threads=args.threads, batch=args.batch, rows=results), f,
                      indent=1)


if __name__ == "__main__":
    main()
