"""Golden tests of several training iterations (``train_run.npz``: PyTorch >= 2 ``zero_grad``;
``train_run_zero_grad_v1.npz``: PyTorch 1.x ``zero_grad``): the reference's schedule (FIRST basic steps at iteration
0, one basic step per later iteration, a meta step every ``meta_period`` iterations) replayed through the project's
own :class:`MetaLearningTrainer` (its ``run_step``, step code and optimizers), fed the stored batches in order and
the stored meta-test domains.

What one iteration cannot show is checked here: the main optimizer's momentum buffers reused across steps, the meta
optimizer interleaved with it, running statistics accumulated over basic steps and the step schedule. Every forward
pass's losses are compared step by step, then the final tracked parameters, and the summaries of the total parameter
change, the running statistics and the momentum buffers. Every setting (schedule, FIRST basic steps, meta period,
lrs, momentum, weight decay, meta-test domains, class counts, seeds) comes from the fixture files.

A second test stops after the first meta step, saves a checkpoint, loads it into a fresh model, optimizers and
trainer, and replays the rest: the resumed run must give the same losses and final weights as the uninterrupted one.
"""
import re

import numpy as np
import pytest

from golden import Fixture, assert_close, weights_spec
from model_utils import check_summaries, dr50_cfg, load_recipe
from fastreid_ms.engine.meta_train_loop import MetaLearningTrainer
from fastreid_ms.modeling import build_model
from fastreid_ms.solver import build_optimizer
from fastreid_ms.utils.checkpoint import Checkpointer
from fastreid_ms.utils.events import EventStorage

BATCH_KEYS = ("images", "targets", "camids", "domainids")
FIXTURES = ["train_run", "train_run_zero_grad_v1"]


class ReplayTrainer(MetaLearningTrainer):
    """The project's trainer with the meta-test domains taken from a list (the reference drew them at random)."""

    def __init__(self, *args, meta_test_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self._meta_test_ids = iter(meta_test_ids)

    def draw_meta_test_domain(self) -> int:
        return int(next(self._meta_test_ids))


def _batch(fx, prefix):
    return {k: fx[f"{prefix}_{k}"] for k in BATCH_KEYS}


def _num_domains(fx):
    return len({m.group(1) for k in fx.arrays for m in [re.match(r"s\d+_dom(\d+)_images$", k)] if m})


def _step_batches(fx, first_step=0):
    """The stored batches from schedule step ``first_step`` on: the mixed batches of the basic steps in order, and
    per source domain the batches of the meta steps in order (each meta step draws one batch of every domain)."""
    schedule = fx.info["schedule"]
    basic = [_batch(fx, f"s{i}_basic") for i, kind in enumerate(schedule) if kind == "basic" and i >= first_step]
    domains = [[_batch(fx, f"s{i}_dom{d}") for i, kind in enumerate(schedule) if kind == "meta" and i >= first_step]
               for d in range(_num_domains(fx))]
    return basic, domains


def _build(fx, first_step=0, meta_test_ids=None):
    """Recipe-initialised Baseline, optimizers with the fixture's constant lrs and the trainer over the stored
    batches from schedule step ``first_step`` on."""
    info = fx.info
    cfg = dr50_cfg(weights_spec()["baseline"]["num_classes"])
    cfg.SOLVER.OPT = "SGD"
    cfg.SOLVER.BASE_LR = float(info["lr"])
    cfg.SOLVER.MOMENTUM = float(info["momentum"])
    for key in ("WEIGHT_DECAY", "WEIGHT_DECAY_BIAS", "WEIGHT_DECAY_NORM"):
        cfg.SOLVER[key] = float(info.get(key.lower(), info["weight_decay"]))
    model = build_model(cfg)
    load_recipe(model, "baseline", int(weights_spec()["baseline"]["seed_in_model_baseline_and_train_iter"]))
    optimizer, _ = build_optimizer(cfg, model)
    optimizer_meta, _ = build_optimizer(cfg, model, flag="meta")
    for group in optimizer_meta.param_groups:
        group["lr"] = float(info["lr_meta"])
    basic, domains = _step_batches(fx, first_step)
    if meta_test_ids is None:
        meta_test_ids = info["meta_test_ids"]
    trainer = ReplayTrainer(model, iter(basic), [iter(d) for d in domains], optimizer, optimizer_meta,
                            meta_period=int(info["meta_period"]),
                            first_iter_basic_steps=int(info["first_iter_basic_steps"]),
                            zero_grad_keeps_tensors=not info["zero_grad_set_to_none"], meta_test_ids=meta_test_ids)
    return model, trainer


def _run(trainer, iterations, storage):
    for it in iterations:
        trainer.iter = storage.iter = it
        trainer.run_step()


def _final_state(fx, model, trainer):
    params = dict(model.parameters_and_names())
    names = fx.info["param_names"]
    momentum = trainer.optimizer.state_dict()["state"]
    index = {p.name: i for i, p in enumerate(trainer.optimizer.parameters)}
    buffers = {}
    for n in names:
        entry = momentum.get(index[n]) if n in index else None
        buffers[n] = None if entry is None else entry.get("momentum_buffer")
    return {"params": {n: params[n].asnumpy().copy() for n in names},
            "buffers": {n: params[n].asnumpy().copy() for n in fx.info["buffer_names"]},
            "momentum": buffers}


def _replay(fx):
    model, trainer = _build(fx)
    with EventStorage(0) as storage:
        _run(trainer, range(int(fx.info["iters"])), storage)
        records = storage.pop_step_losses()
    return records, _final_state(fx, model, trainer)


@pytest.fixture(scope="module", params=FIXTURES)
def replay(request):
    fx = Fixture(request.param)
    return (fx,) + _replay(fx)


def _expected_passes(fx):
    """(step index, phase) of every forward pass in the fixture's order."""
    passes = []
    for i, kind in enumerate(fx.info["schedule"]):
        passes.extend([(i, "basic")] if kind == "basic" else [(i, "mtrain"), (i, "mtest")])
    return passes


def test_schedule_and_losses_step_by_step(replay):
    """Every forward pass, in order: its phase, the iteration it belongs to, its loss names and values (and their
    total), held to the fixture's loss tolerance."""
    fx, records, _ = replay
    expected = _expected_passes(fx)
    assert [r["phase"] for r in records] == [phase for _, phase in expected] == list(fx.info["forward_calls"])
    iteration_of_step = fx.info["iteration_of_step"]
    tol = fx.tol("loss")
    for record, (step, phase) in zip(records, expected):
        assert record["iteration"] == iteration_of_step[step], (step, phase, record["iteration"])
        prefix = f"s{step}_{phase}_loss"
        losses = {k: v for k, v in record.items() if k not in ("iteration", "phase")}
        names = [k[len(prefix) + 1:] for k in fx.keys(prefix + "_") if k != f"{prefix}_total"]
        assert list(losses) == names, f"{fx.name} {prefix}: loss keys {list(losses)} != reference {names}"
        for k, v in losses.items():
            assert_close(v, fx[f"{prefix}_{k}"], tol, f"{fx.name}: {prefix}_{k}")
        assert_close(sum(losses.values()), fx[f"{prefix}_total"], tol, f"{fx.name}: {prefix}_total")


def test_final_parameters(replay):
    fx, _, final = replay
    for key in fx.keys("pN_"):
        name = key[len("pN_"):]
        if name.startswith("slice_"):
            value = final["params"][name[len("slice_"):]][:4, :4]
        else:
            value = final["params"][name]
        assert_close(value, fx[key], fx.tol("out/post"), f"{fx.name}: {key}")


def test_total_parameter_change(replay):
    fx, _, final = replay
    names = fx.info["param_names"]
    spec = weights_spec()["baseline"]
    from golden import recipe_values

    p0 = recipe_values(spec["state_dict"], int(spec["seed_in_model_baseline_and_train_iter"]))
    for key in fx.keys("p0_"):
        np.testing.assert_array_equal(p0[key[3:]], fx[key], err_msg=f"{fx.name}: recipe differs from {key}")
    deltas = [final["params"][n] - p0[n] for n in names]
    np.testing.assert_array_equal(np.array([bool(np.any(d)) for d in deltas]), fx["final_delta_norm"] > 0,
                                  err_msg=f"{fx.name}: which parameters the run changes")
    check_summaries(fx, "final_delta", names, deltas, fx.tol("summary"), f"{fx.name} total change")


def test_running_statistics(replay):
    fx, _, final = replay
    names = fx.info["buffer_names"]
    check_summaries(fx, "final_buf", names, [final["buffers"][n] for n in names], fx.tol("out/post"),
                    f"{fx.name} running statistics")


def test_momentum_buffers(replay):
    """The main optimizer's momentum buffers: which parameters have one (created on their first update) and their
    summaries."""
    fx, _, final = replay
    names = fx.info["param_names"]
    present = np.array([final["momentum"][n] is not None for n in names])
    np.testing.assert_array_equal(present, fx["final_momentum_present"].astype(bool),
                                  err_msg=f"{fx.name}: which parameters have a momentum buffer")
    arrays = [final["momentum"][n] if final["momentum"][n] is not None else np.zeros(1, np.float32) for n in names]
    check_summaries(fx, "final_momentum", names, arrays, fx.tol("summary"), f"{fx.name} momentum buffers")


@pytest.mark.parametrize("name", FIXTURES[:1])
def test_resume_after_first_meta_step(name, tmp_path):
    """Stop after the first meta step (the end of iteration 0), checkpoint, load into a fresh model, optimizers and
    trainer, replay the remaining iterations: the same per-pass losses and final state as without the stop."""
    fx = Fixture(name)
    schedule = fx.info["schedule"]
    iteration_of_step = fx.info["iteration_of_step"]
    first_meta = schedule.index("meta")
    stop_iter = iteration_of_step[first_meta]
    assert all(iteration_of_step[i] == stop_iter for i in range(first_meta, first_meta + 1))
    resume_step = next(i for i, it in enumerate(iteration_of_step) if it > stop_iter)
    meta_ids = list(fx.info["meta_test_ids"])
    used_ids = sum(1 for kind in schedule[:resume_step] if kind == "meta")

    uninterrupted_records, uninterrupted = _replay(fx)

    model, trainer = _build(fx)
    with EventStorage(0) as storage:
        _run(trainer, range(stop_iter + 1), storage)
        records = storage.pop_step_losses()
    Checkpointer(model, str(tmp_path), optimizer=trainer.optimizer, optimizer_meta=trainer.optimizer_meta,
                 trainer=trainer).save("model_stop")
    del model, trainer

    model, trainer = _build(fx, first_step=resume_step, meta_test_ids=meta_ids[used_ids:])
    Checkpointer(model, str(tmp_path), optimizer=trainer.optimizer, optimizer_meta=trainer.optimizer_meta,
                 trainer=trainer).load(str(tmp_path / "model_stop.ckpt"))
    with EventStorage(stop_iter + 1) as storage:
        _run(trainer, range(stop_iter + 1, int(fx.info["iters"])), storage)
        records += storage.pop_step_losses()
    resumed = _final_state(fx, model, trainer)

    assert records == uninterrupted_records
    for part in ("params", "buffers"):
        for n, value in uninterrupted[part].items():
            np.testing.assert_array_equal(resumed[part][n], value, err_msg=f"{part} {n} after resume")
    for n, value in uninterrupted["momentum"].items():
        if value is None:
            assert resumed["momentum"][n] is None, n
        else:
            np.testing.assert_array_equal(resumed["momentum"][n], value, err_msg=f"momentum {n} after resume")
