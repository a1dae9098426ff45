"""kdcl import teacher-topk: an API teacher's top-k log-probabilities (JSONL) into a dataset's
/teacher, read back with h5py; every malformed JSONL refused with one error line naming the line,
the dataset left byte-identical; and kill -9 at random moments never damages the dataset."""
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

from common import Kdcl, clusters, write_dataset

k = Kdcl(sys.argv[1], sys.argv[2])
P = k.path
rng = np.random.default_rng(7)

N, C, K = 300, 10, 4


def api_rows(n, c, kk, seed):
    """Per row: kk (class, logprob) pairs of a log-softmax over c classes, in random order."""
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, c)) * 3
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = []
    for i in range(n):
        top = np.argsort(-logp[i])[:kk]
        pairs = [(int(cl), float(logp[i, cl])) for cl in top]
        g.shuffle(pairs)
        rows.append(pairs)
    return rows


def line(row, pairs, **extra):
    return json.dumps({"row": row, "top_logprobs": [{"class": c, "logprob": lp, **extra}
                                                    for c, lp in pairs]})


def write_jsonl(path, lines):
    with open(path, "w") as f:
        for l in lines:
            f.write(l + "\n")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


x, y = clusters(N, 6, C, seed=3)
write_dataset(P("data.h5"), x, y, C)
rows = api_rows(N, C, K, seed=11)
order = list(range(N))
random.Random(5).shuffle(order)
good = [line(i, rows[i], token="t", bytes=[1, 2]) for i in order]  # extra keys are ignored
good.insert(10, "")          # blank lines are skipped
good.insert(20, "   \t")
write_jsonl(P("api.jsonl"), good)


def check_teacher(path, teacher_id):
    with h5py.File(path, "r") as f:
        t = f["teacher"]
        assert t.attrs["kind"] == "topk", dict(t.attrs)
        assert t.attrs["teacher_id"] == teacher_id, dict(t.attrs)
        assert int(t.attrs["num_classes"]) == C and int(t.attrs["k"]) == K, dict(t.attrs)
        idx, logp = t["topk_idx"], t["topk_logp"]
        assert idx.dtype == np.dtype("<i4") and logp.dtype == np.dtype("<f4"), (idx.dtype,
                                                                                logp.dtype)
        assert idx.shape == (N, K) and logp.shape == (N, K)
        for d in (idx, logp):
            assert d.chunks is not None and d.compression is None and not d.shuffle, d
        idx, logp = idx[...], logp[...]
        for i in range(N):
            want = sorted(rows[i], key=lambda p: (-np.float32(p[1]), p[0]))
            assert list(idx[i]) == [c for c, _ in want], (i, idx[i], want)
            assert np.array_equal(logp[i], np.array([lp for _, lp in want], np.float32)), i
            assert np.all(np.diff(logp[i]) <= 0)
        # the dataset itself is unchanged
        assert np.array_equal(f["inputs/x"][...], x) and np.array_equal(f["labels/y"][...], y)
        assert int(f["labels/y"].attrs["num_classes"]) == C


# --- happy path: --out, then in place ------------------------------------------------------------
orig = read_bytes(P("data.h5"))
k.run("import", "teacher-topk", "--jsonl", P("api.jsonl"), "--data", P("data.h5"),
      "--out", P("out.h5"), "--teacher-id", "gpt-test")
assert read_bytes(P("data.h5")) == orig, "--out changed the source dataset"
assert not os.path.exists(P("out.h5.tmp"))
check_teacher(P("out.h5"), "gpt-test")
k.run("import", "teacher-topk", "--jsonl", P("api.jsonl"), "--data", P("data.h5"))
assert not os.path.exists(P("data.h5.tmp"))
check_teacher(P("data.h5"), "api")
# importing again replaces the teacher
k.run("import", "teacher-topk", "--jsonl", P("api.jsonl"), "--data", P("data.h5"),
      "--teacher-id", "again")
check_teacher(P("data.h5"), "again")
# inspect shows it
txt = k.run("inspect", P("data.h5")).stdout
assert "teacher   kind topk, teacher_id again, 10 classes, k 4, values ok" in txt, txt
js = json.loads(k.run("inspect", P("data.h5"), "--json").stdout)
t = js["teacher"]
assert t["kind"] == "topk" and t["teacher_id"] == "again" and t["num_classes"] == C \
    and t["k"] == K and t["values_ok"] is True, t
print("ok: import round trip, --out, in place, replace, inspect")

# --- malformed JSONL: one error line naming the line, exit 1, nothing changed --------------------
base = read_bytes(P("data.h5"))


def refused(lines, mentions, name="bad.jsonl"):
    write_jsonl(P(name), lines)
    for out in (None, P("bad-out.h5")):
        args = ["import", "teacher-topk", "--jsonl", P(name), "--data", P("data.h5")]
        if out:
            args += ["--out", out]
        err = k.fails(*args, mentions=[P(name)] + mentions)
        assert read_bytes(P("data.h5")) == base, f"dataset changed by a refused import: {err}"
        for p in (P("data.h5.tmp"), P("bad-out.h5"), P("bad-out.h5.tmp")):
            assert not os.path.exists(p), f"{p} left behind: {err}"
    print("ok:", err)


def L(i, pairs=None, **kw):
    return line(i, rows[i] if pairs is None else pairs, **kw)


plain = [L(i) for i in range(N)]
refused(plain[:2] + ['{"row": 2, "top_logprobs": ['] + plain[3:], [":3: not valid JSON"])
refused(plain[:2] + ['{"row": 2} {"row": 3}'] + plain[3:], [":3: not valid JSON"])
refused(plain[:2] + ['[1, 2]'] + plain[3:], [":3: not a JSON object"])
refused([l for i, l in enumerate(plain) if i not in (4, 9)], ["rows 4, 9 missing",
                                                            "2 of 300 rows have no line"])
refused(plain[:250], ["rows 250, 251, 252, 253, 254, ... missing", "50 of 300 rows have no line"])
refused(plain[:6] + [L(2)] + plain[6:], [":7: row 2 appears twice (first on line 3)"])
refused(plain[:5] + [line(300, rows[5])] + plain[6:],
        [":6: row 300 is out of range", "300 rows"])
refused(plain[:5] + [line(-1, rows[5])] + plain[6:], [":6: row -1 is out of range"])
refused(plain[:5] + [json.dumps({"row": 1.5, "top_logprobs": []})] + plain[6:],
        [":6: \"row\" must be an integer"])
refused(plain[:5] + [json.dumps({"top_logprobs": []})] + plain[6:], [":6: no \"row\""])
bad_class = [(10, -0.1)] + rows[7][1:]
refused(plain[:7] + [line(7, bad_class)] + plain[8:], [":8:", "class 10 is outside [0, 10)"])
rep = [rows[7][0], rows[7][1], rows[7][0], rows[7][3]]
refused(plain[:7] + [line(7, rep)] + plain[8:], [":8: class", "appears twice in top_logprobs"])
refused(plain[:4] + [line(4, rows[4][:3])] + plain[5:],
        [":5: top_logprobs has 3 entries but the first line has 4"])
refused(plain[:4] + [line(4, rows[4] + [(9 if 9 not in [c for c, _ in rows[4]] else 8, -9.0)])]
        + plain[5:], [":5: top_logprobs has 5 entries but the first line has 4"])
nan = [(rows[5][0][0], float("nan"))] + rows[5][1:]
refused(plain[:5] + [line(5, nan)] + plain[6:], [":6: not valid JSON", "NaN"])
pos = [(rows[5][0][0], 0.3)] + rows[5][1:]
refused(plain[:5] + [line(5, pos)] + plain[6:], [":6:", "logprob 0.3 is above 1e-4",
                                                 "not a log-probability"])
refused(plain[:5] + [line(5, pos).replace("0.3", "1e999")] + plain[6:], [":6:", "not a finite"])
refused(plain[:5] + [line(5, pos).replace("0.3", "\"-0.3\"")] + plain[6:],
        [":6:", "\"logprob\" must be a number"])
refused(plain[:5] + [json.dumps({"row": 5, "top_logprobs": [{"class": 1}] * 4})] + plain[6:],
        [":6:", "has no \"logprob\""])
over = [(c, -0.01 * (j + 1)) for j, (c, _) in enumerate(rows[5])]
write_jsonl(P("over.jsonl"), plain[:5] + [line(5, over)] + plain[6:])
k.fails("import", "teacher-topk", "--jsonl", P("over.jsonl"), "--data", P("data.h5"),
        mentions=["over.jsonl:6", "sum to", "> 1"])
assert read_bytes(P("data.h5")) == base and not os.path.exists(P("data.h5.tmp"))
refused([], ["no lines"])
refused(["", "  "], ["no lines"])
refused([line(0, [])] + plain[1:], [":1: top_logprobs is empty"])
refused([line(0, rows[0] + [(c, -20.0) for c in range(C) if c not in [p[0] for p in rows[0]]]
              + [(0, -30.0)])] + plain[1:], [":1: top_logprobs has 11 entries", "10 classes"])

# files and flags
base_cmd = ["import", "teacher-topk", "--data", P("data.h5")]
k.fails(*base_cmd, "--jsonl", P("missing.jsonl"), mentions=["missing.jsonl", "no such file"])
k.fails("import", "teacher-topk", "--jsonl", P("api.jsonl"), "--data", P("missing.h5"),
        mentions=["missing.h5", "no such file"])
k.fails("import", "teacher-topk", "--jsonl", P("api.jsonl"), "--data", P("data.h5"), "--out",
        P("no-dir/out.h5"), mentions=["no-dir", "does not exist"])
k.fails(*base_cmd, code=2, mentions=["--jsonl"])
k.fails("import", "teacher-topk", "--jsonl", P("api.jsonl"), code=2, mentions=["--data"])
k.fails(*base_cmd, "--jsonl", P("api.jsonl"), "--frobnicate", code=2, mentions=["--frobnicate"])
k.fails(*base_cmd, "--jsonl", P("api.jsonl"), "--teacher-id", "x" * 300, code=2,
        mentions=["--teacher-id"])
k.fails("import", "teacher-tokp", code=2, mentions=["teacher-tokp", "teacher-topk"])
assert "--jsonl FILE" in k.run("import", "teacher-topk", "--help").stdout
# a dataset whose classes differ from the JSONL's: class 12 of 10
x2, y2 = clusters(N, 6, 4, seed=3)
write_dataset(P("four.h5"), x2, y2, 4)
four = read_bytes(P("four.h5"))
k.fails("import", "teacher-topk", "--jsonl", P("api.jsonl"), "--data", P("four.h5"),
        mentions=["api.jsonl:"])
assert read_bytes(P("four.h5")) == four
assert read_bytes(P("data.h5")) == base
print("ok: files and flags")

# --- kill -9 at random moments ---------------------------------------------------------------
BN, BC, BK = 200_000, 20, 5
xb = np.random.default_rng(1).integers(0, 255, size=(BN, 32), dtype=np.uint8)
yb = (np.arange(BN) % BC).astype(np.int32)
write_dataset(P("big.h5"), xb, yb, BC)
g = np.random.default_rng(2)
big_idx = np.argsort(g.random((BN, BC)), axis=1)[:, :BK].astype(np.int32)
# descending log-probabilities whose mass stays below 1: -log(BK) and below
big_logp = (-np.log(BK) - np.sort(g.random((BN, BK)) * 5, axis=1)).astype(np.float32)
with open(P("big.jsonl"), "w") as f:
    for i in range(BN):
        f.write('{"row": %d, "top_logprobs": [%s]}\n' % (i, ", ".join(
            '{"class": %d, "logprob": %s}' % (c, repr(float(lp)))
            for c, lp in zip(big_idx[i], big_logp[i]))))
big = read_bytes(P("big.h5"))


def big_complete(path):
    """The dataset with the complete, correct teacher."""
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["inputs/x"][...], xb) and np.array_equal(f["labels/y"][...], yb)
        assert np.array_equal(f["teacher/topk_idx"][...], big_idx)
        assert np.array_equal(f["teacher/topk_logp"][...], big_logp)


def opens(path):
    with h5py.File(path, "r") as f:
        assert f["inputs/x"].shape == (BN, 32)


cmd = [k.binary, "import", "teacher-topk", "--jsonl", P("big.jsonl"), "--data", P("big.h5")]


def wait_for_tmp(p, tmp):
    while p.poll() is None and not os.path.exists(tmp):
        time.sleep(0.0002)


# One timed run: T in all, W of it with OUT.tmp on disk (copy, HDF5 edits, fsync, rename).
t0 = time.monotonic()
p = subprocess.Popen(cmd + ["--out", P("timed.h5")], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
wait_for_tmp(p, P("timed.h5.tmp"))
t1 = time.monotonic()
while p.poll() is None and os.path.exists(P("timed.h5.tmp")):
    time.sleep(0.0002)  # W ends at the rename, not at exit (a sanitizer build exits slowly)
W = time.monotonic() - t1
assert p.wait() == 0
T = time.monotonic() - t0
big_complete(P("timed.h5"))
os.remove(P("timed.h5"))
print(f"ok: a full import of {BN} rows takes {T:.2f} s, {W:.3f} s of it writing OUT.tmp")

r = random.Random(1234)
killed_mid_write = 0
for trial in range(16):
    in_place = trial % 2 == 0
    out = P("big.h5") if in_place else P("big-out.h5")
    tmp = out + ".tmp"
    p = subprocess.Popen(cmd + ([] if in_place else ["--out", out]), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    if trial < 6:
        time.sleep(r.uniform(0, T * 1.1))           # any moment
    else:
        wait_for_tmp(p, tmp)                        # while OUT.tmp is being written
        time.sleep(r.uniform(0, W * 0.8))
    mid = os.path.exists(tmp)
    p.send_signal(signal.SIGKILL)
    p.wait()
    finished = p.returncode == 0
    killed_mid_write += mid and not finished
    opens(P("big.h5"))
    if in_place:
        now = read_bytes(P("big.h5"))
        if now != big:
            # only possible once the rename happened: then the teacher is complete
            big_complete(P("big.h5"))
            with open(P("big.h5"), "wb") as f:
                f.write(big)
    else:
        assert read_bytes(P("big.h5")) == big, "the source dataset changed"
        if os.path.exists(out):
            big_complete(out)
            os.remove(out)
    print(f"ok: kill {trial} ({'in place' if in_place else '--out'}, "
          f"{'finished' if finished else 'killed'}{', mid-write' if mid else ''})")
assert killed_mid_write >= 3, f"only {killed_mid_write} kills landed while OUT.tmp existed"
# a stale .tmp from a kill does not stop the next import, which leaves none
subprocess.run(cmd, check=True, capture_output=True)
big_complete(P("big.h5"))
assert not os.path.exists(P("big.h5.tmp"))
print("all import teacher-topk checks passed")
