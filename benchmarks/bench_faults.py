"""Fault injection: does a training run that is killed, preempted, runs out of disk or meets bad data end with exactly
the model of an uninterrupted run, and is no checkpoint ever lost?

A reference run of a tiny synthetic DR50 mix configuration (``tools/train_net.py`` on
``configs/demo/DR50_mix_synthetic.yml``: its 64x32 images and compiled graphs, 3 epochs of 3 iterations, 2 basic
steps before the first meta step, a checkpoint and an evaluation every epoch, fixed SEED) runs uninterrupted. (At
32x16 the last stages' maps are 2x1 and the randomly initialised DR50 produces NaN features by the first
evaluation; op by op, a run takes three times as long as compiled.) Then every trial runs the
same command into its own OUTPUT_DIR, meets its fault, and is continued with ``--resume`` until it completes (at
most ``--max-restarts`` times). The faults:

* ``kill_random``: SIGKILL after a random delay (anywhere: setup, a step, an evaluation, a save);
* ``kill_in_step``: SIGKILL inside a training step (at a random forward/backward pass of the run);
* ``kill_in_eval``: SIGKILL inside an evaluation (at a random batch of the run's evaluations);
* ``kill_in_save``: SIGKILL while a checkpoint file is being written (part of it on disk);
* ``kill_before_tag``: SIGKILL after a checkpoint file is complete and before ``last_checkpoint`` names it;
* ``sigterm`` / ``sigint``: preemption at a random moment, in the first run and again in the first resumed run
  (expected: exit code 143 / 130 and a checkpoint of the exact iteration; during setup the default action kills;
  a SIGINT while a compiled graph runs reaches the trainer as SIGTERM, MindSpore's own handler);
* ``disk_full``: a checkpoint write fails with ENOSPC (expected: exit code 2, one line naming the file);
* ``corrupt_last``: SIGKILL at a random moment, then the file ``last_checkpoint`` names is damaged (expected: the
  resume falls back to the newest intact checkpoint, or starts over when there is none);
* ``nan_loss``: the loss becomes NaN at a random iteration (expected: the run stops naming the iteration);
* ``broken_image``: a training image is truncated before the start and repaired after the failure (expected: exit
  code 2 with one line naming the file).

For each trial it checks, after every interruption, that every ``.ckpt`` in OUTPUT_DIR is intact (CRC32 and
structure) and that ``last_checkpoint`` names an intact file (``lost_files`` counts the failures), and at the end
that the per-step losses (``step_losses.json``), the final weights
(``model_final.ckpt``, bit for bit) and the evaluation results (``metrics.json``) equal the reference run's
(``identical``).

Usage: python benchmarks/bench_faults.py [--trials 11] [--faults kill_in_save sigterm ...] [--seed 0]
       [--workdir DIR] [--keep]
Ends with one JSON line: trials, kills, identical, lost_files, by_fault, seconds.
"""
import argparse
import atexit
import collections
import errno
import json
import os
import random
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import mindspore  # noqa: E402
import numpy as np  # noqa: E402

from fastreid_ms.engine.defaults import DefaultTrainer  # noqa: E402
from fastreid_ms.modeling import passes  # noqa: E402
from fastreid_ms.utils.checkpoint import Checkpointer  # noqa: E402
from fastreid_ms.utils.params import assign_values  # noqa: E402

TRAIN_NET = REPO_ROOT / "tools" / "train_net.py"
CONFIG = REPO_ROOT / "configs" / "demo" / "DR50_mix_synthetic.yml"
FAULTS = ("kill_random", "kill_in_step", "kill_in_eval", "kill_in_save", "kill_before_tag", "sigterm", "sigint",
          "disk_full", "corrupt_last", "nan_loss", "broken_image")
# The function each instrumented fault counts the calls of: the reference run counts them, and the fault strikes
# at one of those calls, picked at random.
INSTRUMENTED = {"kill_in_step": (passes.TrainPass, "__call__"), "kill_in_eval": (passes.EvalPass, "__call__"),
                "kill_in_save": (mindspore, "save_checkpoint"),
                "kill_before_tag": (Checkpointer, "tag_last_checkpoint"),
                "disk_full": (mindspore, "save_checkpoint"), "nan_loss": (DefaultTrainer, "run_step")}
SIGNALS = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT, "kill_random": signal.SIGKILL,
           "corrupt_last": signal.SIGKILL}
TINY_OPTS = ["DATASETS.SYNTHETIC.IMAGE_SIZE", "[64, 32]", "DATASETS.SYNTHETIC.TRAIN_IDS", "4",
             "DATASETS.SYNTHETIC.TEST_IDS", "4", "DATASETS.SYNTHETIC.MIN_IMAGES", "2",
             "DATASETS.SYNTHETIC.MAX_IMAGES", "2", "DATASETS.SYNTHETIC.TEST_IMAGES", "1", "SOLVER.IMS_PER_BATCH", "8",
             "SOLVER.MAX_EPOCH", "3", "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1", "SOLVER.LOG_PERIOD",
             "1", "TEST.IMS_PER_BATCH", "8", "TEST.ROUTER_ANALYSIS.NUM_IMAGES", "4", "DATALOADER.NUM_WORKERS", "0",
             "SOLVER.META.FIRST_ITER_BASIC_STEPS", "2", "SEED", "0"]


# ------------------------------------------------------------------------------------------------------ child side
def _count_calls(owner, name, n, action):
    """Replace ``owner.name`` so that its ``n``-th call (1-based) runs ``action(original, args, kwargs)``; returns
    the one-element list that holds the number of calls so far."""
    original = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            return action(original, args, kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)
    return calls


def _record_calls(counts_file: str) -> None:
    """Count the calls of every instrumented function; write ``{fault: calls}`` to ``counts_file`` at exit."""
    counters = {}
    for fault, (owner, name) in INSTRUMENTED.items():
        key = (id(owner), name)
        if key not in counters:
            counters[key] = _count_calls(owner, name, 0, None)
    atexit.register(lambda: Path(counts_file).write_text(json.dumps(
        {fault: counters[(id(owner), name)][0] for fault, (owner, name) in INSTRUMENTED.items()})))


def _sigkill(*_):
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install_fault(fault: str, n: int) -> None:
    """Instrument the library in this (child) process for ``fault`` at the ``n``-th occasion."""
    if fault in ("kill_in_step", "kill_in_eval", "kill_before_tag"):
        def action(original, args, kwargs):
            _sigkill()
    elif fault == "kill_in_save":
        def action(original, args, kwargs):
            tensors, path = args[0], args[1]
            original(tensors[: max(1, len(tensors) // 2)], path, **kwargs)
            _sigkill()
    elif fault == "disk_full":
        def action(original, args, kwargs):
            with open(args[1], "wb") as f:
                f.write(b"\0" * 1024)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), args[1])
    elif fault == "nan_loss":
        def action(original, args, kwargs):
            trainer = args[0]
            weight = trainer.model.heads.weight1.weight
            assign_values([weight], [np.full(weight.shape, np.nan, np.float32)])
            return original(*args, **kwargs)
    else:
        return
    owner, name = INSTRUMENTED[fault]
    _count_calls(owner, name, n, action)


def child_main(spec: str, argv) -> None:
    fault = json.loads(spec)
    if fault["fault"] == "count":
        _record_calls(fault["counts_file"])
    else:
        _install_fault(fault["fault"], int(fault["n"]))
    sys.argv = [str(TRAIN_NET)] + list(argv)
    runpy.run_path(str(TRAIN_NET), run_name="__main__")


# ----------------------------------------------------------------------------------------------------- parent side
def _command(output_dir: Path, data_root: Path, resume: bool, fault=None):
    cmd = [sys.executable, str(Path(__file__).resolve())]
    cmd += ["--child", json.dumps(fault or {"fault": "none", "n": 0})]
    cmd += ["--", "--config-file", str(CONFIG)] + (["--resume"] if resume else [])
    return cmd + TINY_OPTS + ["DATASETS.ROOT", str(data_root), "OUTPUT_DIR", str(output_dir)]


def _run(cmd, signal_after=None, signum=None, timeout=1800):
    """Run ``cmd``; with ``signal_after`` send ``signum`` after that many seconds. Returns (returncode, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if signal_after is not None:
        try:
            proc.wait(timeout=signal_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signum)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _ckpt_intact(path: Path) -> bool:
    try:
        mindspore.load_checkpoint(str(path), crc_check=True)
    except Exception:  # noqa: BLE001 - any failure to read counts as a lost file
        return False
    return True


def _lost_files(output_dir: Path) -> int:
    """Checkpoints of ``output_dir`` that do not read back intact, plus 1 if ``last_checkpoint`` names a missing or
    damaged file."""
    lost = sum(not _ckpt_intact(p) for p in output_dir.glob("*.ckpt"))
    tag = output_dir / "last_checkpoint"
    if tag.is_file():
        named = output_dir / tag.read_text().strip()
        lost += int(not named.is_file() or not _ckpt_intact(named))
    return lost


def _step_losses(output_dir: Path):
    """The per-pass loss records of the run that produced the final model (a resumed run's writer replaces the
    records its interrupted attempt left from its start iteration on)."""
    path = output_dir / "step_losses.json"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _eval_results(output_dir: Path):
    results = {}
    path = output_dir / "metrics.json"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "mAP" in record:
            results[record["iteration"]] = {k: record[k] for k in ("Rank-1", "Rank-5", "mAP", "mINP")}
    return results


def _weights(output_dir: Path):
    path = output_dir / "model_final.ckpt"
    if not path.is_file():
        return None
    return {k: v.asnumpy() for k, v in mindspore.load_checkpoint(str(path)).items()
            if not k.startswith("__") and hasattr(v, "asnumpy")}


def _same_weights(a, b) -> bool:
    return a is not None and b is not None and a.keys() == b.keys() and \
        all(np.array_equal(a[k], b[k]) for k in a)


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def run_trial(fault: str, rng: random.Random, data_root: Path, output_dir: Path, reference_s: float,
              calls: dict, max_restarts: int):
    """Run one trial (``calls``: the reference run's calls of each instrumented function); returns (kills,
    lost_files, completed, notes)."""
    kills, lost, notes = 0, 0, []
    broken = None
    if fault == "broken_image":
        images = sorted((data_root / "Market-1501-v15.09.15" / "bounding_box_train").glob("*.jpg"))
        broken = images[rng.randrange(len(images))]
        original = broken.read_bytes()
        broken.write_bytes(original[: len(original) // 3])
    child = {"fault": fault, "n": rng.randint(1, calls[fault])} if fault in INSTRUMENTED else None
    signum = SIGNALS.get(fault)
    signalled_runs = 2 if fault in ("sigterm", "sigint") else 1
    resume = False
    for attempt in range(max_restarts + 1):
        delay = rng.uniform(3.0, 0.9 * reference_s) if signum is not None and attempt < signalled_runs else None
        code, err = _run(_command(output_dir, data_root, resume, child if attempt == 0 else None), delay, signum)
        if code == 0:
            return kills, lost, True, notes
        kills += 1
        last_line = err.strip().splitlines()[-1] if err.strip() else ""
        notes.append(f"attempt {attempt}: exit {code}: {last_line[:160]}")
        lost += _lost_files(output_dir)
        if fault == "corrupt_last" and attempt == 0 and (output_dir / "last_checkpoint").is_file():
            _damage(output_dir / (output_dir / "last_checkpoint").read_text().strip())
        if broken is not None:
            broken.write_bytes(original)
            broken = None
        resume = True
    return kills, lost, False, notes


def parent_main(args) -> None:
    rng = random.Random(args.seed)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_faults_"))
    workdir.mkdir(parents=True, exist_ok=True)
    data_root = workdir / "data"
    start = time.time()
    t0 = time.time()
    counts_file = workdir / "reference_calls.json"
    code, err = _run(_command(workdir / "reference", data_root, False,
                              {"fault": "count", "counts_file": str(counts_file)}))
    reference_s = time.time() - t0
    if code != 0:
        sys.exit(f"the reference run failed (exit {code}): {err[-2000:]}")
    calls = json.loads(counts_file.read_text())
    reference = (_step_losses(workdir / "reference"), _weights(workdir / "reference"),
                 _eval_results(workdir / "reference"))
    print(f"reference run: {reference_s:.0f} s, {len(reference[0])} step records, "
          f"{len(reference[2])} evaluations, calls of the instrumented functions {calls}", flush=True)
    faults = list(args.faults or FAULTS)
    by_fault = collections.OrderedDict((f, {"trials": 0, "kills": 0, "identical": 0, "lost_files": 0})
                                       for f in faults)
    for trial in range(args.trials):
        fault = faults[trial % len(faults)]
        output_dir = workdir / f"trial{trial:02d}_{fault}"
        shutil.rmtree(output_dir, ignore_errors=True)
        kills, lost, completed, notes = run_trial(fault, rng, data_root, output_dir, reference_s, calls,
                                                  args.max_restarts)
        same = completed and _step_losses(output_dir) == reference[0] and \
            _same_weights(_weights(output_dir), reference[1]) and _eval_results(output_dir) == reference[2]
        stats = by_fault[fault]
        stats["trials"] += 1
        stats["kills"] += kills
        stats["identical"] += int(same)
        stats["lost_files"] += lost
        print(f"trial {trial:2d} {fault:16s} interruptions {kills} lost files {lost} "
              f"{'identical' if same else 'DIFFERENT' if completed else 'NOT COMPLETED'}", flush=True)
        for note in notes:
            print(f"    {note}", flush=True)
        if not args.keep:
            shutil.rmtree(output_dir, ignore_errors=True)
    summary = {"trials": args.trials, "kills": sum(s["kills"] for s in by_fault.values()),
               "identical": sum(s["identical"] for s in by_fault.values()),
               "lost_files": sum(s["lost_files"] for s in by_fault.values()),
               "by_fault": {k: v for k, v in by_fault.items() if v["trials"]},
               "reference_run_s": round(reference_s, 1), "seconds": round(time.time() - start, 1)}
    if not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        child_main(argv[1], argv[3:])  # --child SPEC -- train_net arguments
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=len(FAULTS))
    parser.add_argument("--faults", nargs="+", choices=FAULTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-restarts", type=int, default=4)
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep every trial's OUTPUT_DIR")
    parent_main(parser.parse_args(argv))


if __name__ == "__main__":
    main()
