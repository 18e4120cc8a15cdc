"""DefaultTrainer and tools/train_net.py end to end on a tiny DR50 mix configuration over synthetic datasets in the
real layouts: training (basic + meta steps, evaluation, checkpoints, logs), exact resume after a crash, evaluation
of a saved checkpoint, and the command line's one-line errors.

Images are 64x32 (the golden fixtures' size): at 32x16 the last stages' maps are 2x1 and the randomly initialised
DR50's batch-statistics gradients explode (~1e8 on the stem at the first step), as the reference's would."""
import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mindspore
import numpy as np
import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.data.synthetic import make_synthetic_reid
from fastreid_ms.engine import CallbackHook, DefaultTrainer, TrainingPreempted
from fastreid_ms.engine.defaults import default_setup
from fastreid_ms.utils.params import assign_values
from torch_writer import fake_torch, save_state_dict_pth  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
TRAIN_NET = REPO / "tools" / "train_net.py"
SOURCES = ("cuhkSYSU", "Market1501", "MSMT17")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reid_data")
    tiny = dict(num_train_ids=4, num_test_ids=4, min_images=2, max_images=2, test_images=1, test_cameras=2,
                num_distractors=2, num_junk=1, num_val=2)
    make_synthetic_reid(str(root), SOURCES + ("CUHK03",), seed=5, image_size=(64, 32),
                        sizes={name: tiny for name in SOURCES + ("CUHK03",)})
    return str(root)


def tiny_opts(data_root, output_dir, max_epoch=2):
    return ["DATASETS.ROOT", data_root, "OUTPUT_DIR", str(output_dir), "MODEL.BACKBONE.PRETRAIN", "False",
            "INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]", "SOLVER.IMS_PER_BATCH", "8",
            "SOLVER.BASE_LR", "0.004", "SOLVER.DP_REPLICAS", "1",
            "SOLVER.MAX_EPOCH", str(max_epoch), "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD", "1",
            "SOLVER.META.FIRST_ITER_BASIC_STEPS", "2", "SOLVER.LOG_PERIOD", "1", "DATALOADER.NUM_WORKERS", "0",
            "TEST.EVAL_PERIOD", str(max_epoch), "TEST.IMS_PER_BATCH", "64", "SEED", "7"]


def tiny_cfg(data_root, output_dir, max_epoch=2):
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "bagtricks_DR50_mix.yml"))
    cfg.merge_from_list(tiny_opts(data_root, output_dir, max_epoch))
    return cfg


class _Args:
    config_file = ""
    eval_only = False
    resume = False


def _recording_trainer(cfg, resume, before_step):
    """A DefaultTrainer (resumed or not) that records {iteration: {loss name: value}} after every step and calls
    ``before_step(trainer)`` before every step."""
    default_setup(cfg, _Args())
    trainer = DefaultTrainer(cfg)
    losses = {}

    def record(t):
        latest = t.storage.latest()
        losses[t.iter] = {k: v for k, (v, it) in latest.items() if k.startswith("loss") and it == t.iter}

    trainer.register_hooks([CallbackHook(after_step=record, before_step=before_step)])
    trainer.resume_or_load(resume=resume)
    return trainer, losses


def _train(cfg, resume=False, nan_at_iter=None):
    """Run DefaultTrainer; returns the trainer and its per-step losses. ``nan_at_iter``: NaN written into a
    classifier's weights at the start of that iteration, so that its loss is NaN."""
    def poison(t):
        if t.iter == nan_at_iter:
            weight = t.model.heads.weight1.weight
            assign_values([weight], [np.full(weight.shape, np.nan, np.float32)])

    trainer, losses = _recording_trainer(cfg, resume, poison)
    if nan_at_iter is not None:
        with pytest.raises(FloatingPointError, match=f"Loss became infinite or NaN at iteration={nan_at_iter}!"):
            trainer.train()
    else:
        trainer.train()
    return trainer, losses


FULL_EPOCHS = 4


@pytest.fixture(scope="module")
def full_run(data_root, tmp_path_factory):
    """The uninterrupted run: its output folder, iterations per epoch and per-step losses (the trainer itself is
    released: the tests that follow build several more)."""
    out = tmp_path_factory.mktemp("full_run")
    trainer, losses = _train(tiny_cfg(data_root, out, max_epoch=FULL_EPOCHS))
    ipe = trainer.iters_per_epoch
    del trainer
    _release()
    return out, ipe, losses


def _release():
    """Free the memory of the trainers the caller dropped (their compiled graphs included)."""
    gc.collect()
    mindspore.ms_memory_recycle()


def test_training_run_writes_logs_checkpoints_and_evaluates(full_run):
    out, ipe, losses = full_run
    assert sorted(losses) == list(range(FULL_EPOCHS * ipe))
    # basic-step losses every iteration, meta-step losses every SOLVER.META.PERIOD iterations
    assert all("loss_cls" in losses[i] for i in losses)
    assert all(("loss_triplet_mtest" in losses[i]) == (i % 3 == 0) for i in losses)
    for name in ("log.txt", "config.yaml", "metrics.json", "step_losses.json", "training_curves.png",
                 "last_checkpoint", "model_0000.ckpt", "model_final.ckpt"):
        assert (out / name).is_file(), name
    assert (out / "last_checkpoint").read_text().strip() == "model_final.ckpt"
    saved = get_cfg()
    saved.merge_from_file(str(out / "config.yaml"))
    assert (saved.MODEL.HEADS.NUM_CLASSES1, saved.MODEL.HEADS.NUM_CLASSES2, saved.MODEL.HEADS.NUM_CLASSES3) == (4, 4, 4)
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert any("total_loss" in r and "lr" in r for r in records)
    assert any("metric" in r and "Rank-1" in r for r in records), "evaluation results are not in metrics.json"
    log = (out / "log.txt").read_text()
    assert "eta:" in log and "lr:" in log and "Rank-1" in log


def test_resume_after_nan_loss_continues_with_identical_losses(data_root, full_run, tmp_path):
    """A NaN loss in the second epoch stops the run (FloatingPointError naming the iteration) with the first
    epoch's checkpoint intact; resumed from it, every later step, three meta periods included, has the
    uninterrupted run's losses (the compiled graphs must see the loaded weights, optimizer buffers and
    gradient-presence memory, not the values they were compiled with)."""
    _, ipe, full = full_run
    cfg = tiny_cfg(data_root, tmp_path / "crashed", max_epoch=FULL_EPOCHS)
    _, first = _train(cfg, nan_at_iter=ipe + 1)
    _release()
    assert (tmp_path / "crashed" / "last_checkpoint").read_text().strip() == "model_0000.ckpt"
    resumed_trainer, resumed = _train(cfg, resume=True)
    assert resumed_trainer.start_epoch == 1
    assert sorted(first) == list(range(ipe + 1))
    assert sorted(resumed) == list(range(ipe, len(full)))
    assert sum("loss_triplet_mtest" in resumed[it] for it in resumed) >= 3
    for it in resumed:
        assert resumed[it].keys() == full[it].keys(), it
        np.testing.assert_allclose([resumed[it][k] for k in full[it]], [full[it][k] for k in full[it]], rtol=1e-6,
                                   err_msg=f"iteration {it} after resume differs from the uninterrupted run")


def _train_until_signal(cfg, signal_before_iter, resume):
    """Run DefaultTrainer and send this process SIGTERM at the start of iteration ``signal_before_iter``; returns
    the trainer, the recorded losses and the TrainingPreempted it ended with."""
    def send(t):
        if t.iter == signal_before_iter:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer, losses = _recording_trainer(cfg, resume, send)
    with pytest.raises(TrainingPreempted) as stopped:
        trainer.train()
    return trainer, losses, stopped.value.with_traceback(None)  # its frames would keep the trainer alive


def test_preempted_twice_resumes_at_the_exact_iteration(data_root, full_run, tmp_path):
    """SIGTERM inside an epoch, then at an epoch's last step: each time the running step finishes (at an epoch end
    also the epoch's evaluation and checkpoints), model_preempted is written and --resume continues at the next
    iteration with the uninterrupted run's losses; the default handler is back afterwards."""
    _, ipe, full = full_run
    cfg = tiny_cfg(data_root, tmp_path / "preempted", max_epoch=FULL_EPOCHS)
    first_stop, second_stop = ipe + 1, 3 * ipe - 1
    trainer, losses, stopped = _train_until_signal(cfg, first_stop, resume=False)
    assert (stopped.iteration, stopped.signum, stopped.exit_code) == (first_stop + 1, signal.SIGTERM, 143)
    assert str(stopped) == (f"stopped by SIGTERM before iteration {first_stop + 1}; checkpoint "
                            f"{tmp_path / 'preempted' / 'model_preempted.ckpt'} written; continue with --resume")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    del trainer
    _release()
    trainer, more, stopped = _train_until_signal(cfg, second_stop, resume=True)
    assert trainer.start_iter == first_stop + 1 and stopped.iteration == second_stop + 1
    assert (tmp_path / "preempted" / "model_0002.ckpt").is_file()  # the epoch end ran before the stop
    del trainer
    _release()
    losses.update(more)
    resumed_trainer, rest = _train(cfg, resume=True)
    assert resumed_trainer.start_iter == 3 * ipe
    losses.update(rest)
    assert sorted(losses) == sorted(full)
    for it in full:
        np.testing.assert_allclose([losses[it][k] for k in full[it]], [full[it][k] for k in full[it]], rtol=1e-6,
                                   err_msg=f"iteration {it} after the preemptions differs from the uninterrupted run")


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(TRAIN_NET), *args], capture_output=True, text=True, env=env,
                          timeout=900)


def test_train_net_trains_then_evaluates_the_checkpoint(data_root, tmp_path, fake_torch):
    out = tmp_path / "cli"
    opts = tiny_opts(data_root, out)
    result = _run_cli("--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), *opts)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "model_final.ckpt").is_file()
    eval_out = tmp_path / "eval"
    opts = tiny_opts(data_root, eval_out) + ["MODEL.WEIGHTS", str(out / "model_final.ckpt")]
    result = _run_cli("--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "--eval-only", *opts)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| Dataset" in result.stdout and "CUHK03" in result.stdout
    results = json.loads((eval_out / "evaluation_results.json").read_text())
    assert 0 <= results["mAP"] <= 100 and results["weights"].endswith("model_final.ckpt")
    # router analysis after the evaluation (training evaluated too): a table per domain in the log and a PNG
    for folder in (out, eval_out):
        log = (folder / "log.txt").read_text()
        assert "Mean routing weights" in log and "| MSMT17 (source)" in log and "| CUHK03 (target)" in log
        assert (folder / "router_weights.png").stat().st_size > 0
    # the classifier tensors of the checkpoint do not fit the 0-class eval heads: skipped with one info line
    skip_lines = [line for line in (eval_out / "log.txt").read_text().splitlines() if "heads.weight1.weight" in line]
    assert len(skip_lines) == 1

    # the same weights as a PyTorch FastReID checkpoint ({"model": {"module.<name>": tensor}} + num_batches_tracked)
    state = {k: v.asnumpy() for k, v in mindspore.load_checkpoint(str(out / "model_final.ckpt")).items()
             if not k.startswith("__")}
    state.update({k.replace("running_mean", "num_batches_tracked"): np.array(3, np.int64)
                  for k in list(state) if k.endswith("running_mean")})
    save_state_dict_pth(tmp_path / "model_final.pth", state, fake_torch)
    pth_out = tmp_path / "eval_pth"
    opts = tiny_opts(data_root, pth_out) + ["MODEL.WEIGHTS", str(tmp_path / "model_final.pth")]
    result = _run_cli("--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "--eval-only", *opts)
    assert result.returncode == 0, result.stderr[-3000:]
    pth_results = json.loads((pth_out / "evaluation_results.json").read_text())
    for key in ("Rank-1", "Rank-5", "mAP", "mINP"):
        assert pth_results[key] == pytest.approx(results[key], abs=1e-6), key


@pytest.mark.parametrize("args,expected", [
    (["--config-file", "no/such/config.yml"], "config file not found: 'no/such/config.yml'"),
    (["--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "SOLVER.BASE_RL", "0.1"],
     "unknown config key 'SOLVER.BASE_RL'"),
    (["--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "SOLVER.MAX_EPOCH", "many"],
     "SOLVER.MAX_EPOCH"),
    (["--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "SOLVER.DP_REPLICAS", "0"],
     "SOLVER.DP_REPLICAS=0 must be a positive multiple of the number of processes (1)"),
    (["--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "SOLVER.IMS_PER_BATCH", "30"],
     "SOLVER.IMS_PER_BATCH=30 must be a multiple of 2 x DATALOADER.NUM_INSTANCE=2"),
    (["--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "MODEL.BACKBONE.PRETRAIN_PATH", ""],
     "MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty"),
    (["--config-file", str(REPO / "configs" / "ACL-DGReID" / "P1_to_PRID_GRID_VIPeR_iLIDS.yml"),
      "MODEL.HEADS.NUM_CLASSES1", "5"],
     "MODEL.HEADS.NUM_CLASSES1/2/3=(5, 0, 0) describe 3 source domains but DATASETS.NAMES="),
])
def test_train_net_config_errors_are_one_clear_line(args, expected, tmp_path):
    result = _run_cli(*args, "OUTPUT_DIR", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train_net.py: error:") and expected in lines[0], result.stderr
    assert "Traceback" not in result.stdout
    if (tmp_path / "log.txt").is_file():  # errors after the job setup: the traceback is in the log file
        assert "Traceback" in (tmp_path / "log.txt").read_text()


def test_unusable_device_is_one_error_line(tmp_path):
    """MindSpore's device probe logs its own warnings about the missing plugin first; the command's error is one
    line, without a traceback."""
    result = _run_cli("--config-file", str(REPO / "configs" / "bagtricks_DR50_mix.yml"), "MODEL.DEVICE", "ascend",
                      "OUTPUT_DIR", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train_net.py: error: MODEL.DEVICE='ascend'") and "no usable Ascend device" in last


def test_warmup_given_in_iterations_is_rejected_with_a_hint(data_root, tmp_path):
    cfg = tiny_cfg(data_root, tmp_path / "warm")
    cfg.SOLVER.WARMUP_ITERS = 2000
    with pytest.raises(ValueError, match="counts EPOCHS"):
        DefaultTrainer(cfg)
