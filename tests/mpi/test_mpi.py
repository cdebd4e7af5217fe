#!/usr/bin/env python3
"""crayon under mpirun (the -DCRAYON_MPI=ON build): data-parallel training and the
distributed sweep against one process, on the real MNIST in data/mnist.

  test_mpi.py CRAYON DATA_DIR CASE      CASE: float | batchnorm | qat | resume | sweep | kill | error

Each case runs `mpirun --oversubscribe -np 2` beside a single process doing the same work
and compares what they wrote (checkpoints with h5py, sweep rows as text). The single
process runs with one thread, as each rank does, so the only difference left is the order
in which floats are summed: rank 0's half of a batch plus rank 1's, against the whole batch
at once.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

CRAYON, DATA, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
ENV = dict(os.environ)
if os.getuid() == 0:  # containers and CI run as root, which Open MPI refuses unless told
    ENV.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
MPIRUN = ["mpirun", "--oversubscribe", "-np", "2"]


def run(args, ranks=1, check=True, timeout=600):
    cmd = (MPIRUN + [CRAYON] if ranks == 2 else [CRAYON]) + args
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def arrays(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def compare(a_path, b_path, tol, what):
    """Every float array of the model and optimizer within tol (absolute, values are O(1)),
    every integer array (step counters, observer flags) equal."""
    a, b = arrays(a_path), arrays(b_path)
    if sorted(a) != sorted(b):
        sys.exit(f"FAIL {what}: the checkpoints hold different entries")
    worst, where = 0.0, ""
    for k in sorted(a):
        if not (k.startswith("model/") or k.startswith("optimizer/")):
            continue
        if a[k].dtype.kind == "f":
            d = float(np.abs(a[k].astype(np.float64) - b[k]).max()) if a[k].size else 0.0
            if d > worst:
                worst, where = d, k
        elif not np.array_equal(a[k], b[k]):
            sys.exit(f"FAIL {what}: {k} differs: {a[k].ravel()[:8]} vs {b[k].ravel()[:8]}")
    print(f"{what}: largest difference {worst:.3g} ({where}), tolerance {tol:g}")
    if not worst <= tol:
        sys.exit(f"FAIL {what}: {where} differs by {worst:.3g} > {tol:g}")


def train_args(model, limit, batch, epochs, lr, out, extra=()):
    return ["train", "--dataset", "mnist", "--data-dir", DATA, "--model", model, "--train-limit", str(limit),
            "--test-limit", "1000", "--batch-size", str(batch), "--epochs", str(epochs), "--lr", str(lr),
            "--out", out, "-q", *extra]


def same_both_ways(tmp, model, limit, batch, epochs, lr, tol, what, extra=()):
    one, two = os.path.join(tmp, "one.h5"), os.path.join(tmp, "two.h5")
    run(train_args(model, limit, batch, epochs, lr, one, ["--threads", "1", *extra]))
    run(train_args(model, limit, batch, epochs, lr, two, extra), ranks=2)
    compare(one, two, tol, what)
    return one, two


CONV_BN = "conv(8,3,pad=1)-bn-relu-maxpool(2)-conv(16,3,pad=1)-bn-relu-maxpool(2)-flatten-linear(10)"

with tempfile.TemporaryDirectory() as tmp:
    if CASE == "float":
        # 306 steps of SGD with momentum (6467 images, batches of 64, 3 epochs; each epoch's
        # last batch of 3 splits 1 + 2, so a rank's share must be weighted by its size).
        # Measured: 1.4e-7 on the AMD EPYC this was written on; a rank that skipped the
        # gradient sum, or weighted its shard 1/2, is off by 1e-2 and more. (Not every data
        # size is this tame: with 6403 images at this rate one process on 1 and on 2 threads
        # already part by 2e-2 within an epoch, float summation order alone.)
        same_both_ways(tmp, "mlp", 6467, 64, 3, 0.05, 1e-5, "mlp, 306 steps, 2 ranks vs 1")
    elif CASE == "dropout":
        # Random draws per element: every rank draws the whole batch's dropout mask and
        # stochastic roundings and keeps its rows, so they are one process's draws.
        same_both_ways(tmp, "flatten-linear(128)-relu-dropout(0.3)-linear(10)", 6400, 64, 3, 0.05, 1e-5,
                       "mlp with dropout, 300 steps, 2 ranks vs 1")
        # Stochastic rounding: one step, exact to 1e-8 (a rank drawing other numbers is off by
        # a grid step). After it the roundings of values that differ in their last bit flip
        # (one process on 1 and on 2 threads differs by 2e-3 after 3 steps).
        same_both_ways(tmp, "mlp", 64, 64, 1, 0.05, 1e-6, "mlp QAT with stochastic rounding, 1 step, 2 ranks vs 1",
                       ["--qat", "--qat-warmup", "10", "--rounding", "stochastic"])
    elif CASE == "batchnorm":
        # Synchronized batch norm: 200 steps of a conv net with two batch norms; the running
        # statistics are compared too. Per-rank statistics would differ by 1e-2 after one step.
        same_both_ways(tmp, CONV_BN, 6400, 64, 2, 0.01, 1e-4, "conv + batch norm, 200 steps, 2 ranks vs 1")
    elif CASE == "qat":
        # QAT with the observers synchronized: 20 steps (warm-up 10, then the grids frozen),
        # 8-bit weights and activations; the grids (scales, observer ranges) are compared
        # with the weights. Measured: 2e-7. Not a few hundred steps: QAT is chaotic in the
        # summation order itself (a rounding that flips moves a weight a whole grid step),
        # so 1 vs 2 threads in one process differ by 1e-2 after 50 steps, as 1 vs 2 ranks do.
        same_both_ways(tmp, "mlp", 1280, 64, 1, 0.05, 1e-5, "mlp QAT, 20 steps, 2 ranks vs 1",
                       ["--qat", "--qat-warmup", "10"])
    elif CASE == "resume":
        # A checkpoint is the same for any number of ranks: 2 ranks for 2 epochs, resumed
        # by 1 process for the third, ends where 1 process running all 3 does; and the other
        # way round.
        straight = os.path.join(tmp, "straight.h5")
        run(train_args("mlp", 6400, 64, 3, 0.05, straight, ["--threads", "1"]))
        for first, second in ((2, 1), (1, 2)):
            ck = os.path.join(tmp, f"ck{first}{second}.h5")
            run(train_args("mlp", 6400, 64, 2, 0.05, ck, ["--threads", "1"] if first == 1 else []), ranks=first)
            run(["train", "--resume", ck, "--epochs", "3", "--out", ck, "-q"] +
                (["--threads", "1"] if second == 1 else []), ranks=second)
            compare(straight, ck, 1e-5, f"{first} rank(s) for 2 epochs, resumed by {second} for the third, vs 1 straight")
    elif CASE == "sweep":
        # The quick sweep: 2 ranks (cells handed out dynamically by rank 0) write the rows
        # one process writes, every column but the time.
        def rows(d):
            out = {}
            for line in open(os.path.join(d, "results.jsonl")):
                key = line.split('"key": "')[1].split('"')[0]
                if key in out:
                    sys.exit(f"FAIL: {d}/results.jsonl holds {key} twice")
                out[key] = line.split(', "seconds"')[0]
            return out
        one, two = os.path.join(tmp, "one"), os.path.join(tmp, "two")
        base = ["sweep", "--quick", "--data-dir", DATA, "--no-plots", "-q"]
        run(base + ["--dir", one, "--threads", "1"])
        run(base + ["--dir", two], ranks=2)
        a, b = rows(one), rows(two)
        print(f"sweep --quick: {len(a)} rows from 1 process, {len(b)} from 2 ranks")
        if a != b or len(a) == 0:
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    print(f"  {k}:\n    1: {a.get(k)}\n    2: {b.get(k)}")
            sys.exit("FAIL: the 2-rank sweep's rows differ from the 1-process sweep's")
        csv = open(os.path.join(two, "results.csv")).read().strip().split("\n")
        if len(csv) != len(b) + 1:
            sys.exit(f"FAIL: results.csv has {len(csv) - 1} rows, results.jsonl {len(b)}")
        # Interrupted and resumed with another number of ranks: drop the last 3 rows and run
        # again with 2 ranks; exactly those are computed again.
        lines = open(os.path.join(one, "results.jsonl")).read().strip().split("\n")
        open(os.path.join(one, "results.jsonl"), "w").write("\n".join(lines[:-3]) + "\n")
        p = run(["sweep", "--quick", "--data-dir", DATA, "--no-plots", "--dir", one], ranks=2)
        if "3 to run" not in p.stdout:
            sys.exit(f"FAIL: the resumed sweep did not run exactly the 3 missing cells:\n{p.stdout}")
        if rows(one) != a:
            sys.exit("FAIL: the resumed sweep's rows differ")
    elif CASE == "kill":
        # SIGKILL rank 1 mid-training: mpirun ends the job with an error naming the rank, and
        # the last checkpoint (written atomically by rank 0) is intact and loads.
        out, log = os.path.join(tmp, "model.h5"), os.path.join(tmp, "log.csv")
        cmd = MPIRUN + [CRAYON] + train_args("mlp", 6400, 64, 500, 0.05, out, ["--log", log])
        job = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.exists(log) and open(log).read().count("\n") >= 3):
            time.sleep(0.1)
        victim = None
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == job.pid and b"OMPI_COMM_WORLD_RANK=1" in environ:
                victim = int(pid)
        if victim is None:
            job.kill()
            sys.exit("FAIL: found no rank-1 process to kill (did the job start?)")
        os.kill(victim, signal.SIGKILL)
        t0 = time.time()
        try:
            stdout, stderr = job.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()
            sys.exit("FAIL: the job did not end within 60 s of one rank's death")
        print(f"killed rank 1 (pid {victim}); the job exited {job.returncode} after {time.time() - t0:.1f} s")
        print("  " + "\n  ".join(line for line in stderr.split("\n") if "rank 1" in line or "signal" in line))
        if job.returncode == 0 or "rank 1" not in stderr:
            sys.exit(f"FAIL: expected a non-zero exit naming rank 1, got {job.returncode}:\n{stderr}")
        p = run(["summary", "--model", out])
        print(f"the checkpoint loads: {p.stdout.strip().splitlines()[0]}")
    elif CASE == "error":
        # A bad flag: every rank fails with one line naming it, the job exits non-zero, fast.
        t0 = time.time()
        p = run(["train", "--data-dir", DATA, "--batch-size", "0"], ranks=2, check=False, timeout=60)
        print(f"exit {p.returncode} after {time.time() - t0:.1f} s: {p.stderr.strip().splitlines()[0]}")
        if p.returncode == 0 or "--batch-size" not in p.stderr or "(rank " not in p.stderr:
            sys.exit(f"FAIL: expected a non-zero exit and a line naming --batch-size and the rank:\n{p.stderr}")
        # Settings that cannot be synchronized are refused before training starts.
        p = run(["train", "--data-dir", DATA, "--train-limit", "256", "--qat", "--observer", "kl", "-q"], ranks=2,
                check=False, timeout=60)
        print(f"--observer kl on 2 ranks: exit {p.returncode}: {p.stderr.strip().splitlines()[0]}")
        if p.returncode == 0 or "--observer: kl is not synchronized" not in p.stderr:
            sys.exit(f"FAIL: expected 2 ranks to refuse the kl observer:\n{p.stderr}")
        # An error that depends on the rank count: 4 ranks cannot split a last batch of 2.
        p = subprocess.run(["mpirun", "--oversubscribe", "-np", "4", CRAYON, "train", "--data-dir", DATA,
                            "--train-limit", "130", "--batch-size", "64", "-q", "--epochs", "1"],
                           env=ENV, capture_output=True, text=True, timeout=120)
        print(f"4 ranks, a last batch of 2: exit {p.returncode}: "
              f"{next((l for l in p.stderr.splitlines() if 'batch' in l), '')}")
        if p.returncode == 0 or "last batch of 2" not in p.stderr:
            sys.exit(f"FAIL: expected 4 ranks to refuse a last batch of 2:\n{p.stderr}")
    else:
        sys.exit(f"unknown case {CASE}")
print("ok")
