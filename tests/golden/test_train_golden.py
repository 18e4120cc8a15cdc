"""Golden tests of training against the reference's own runs, through the project's trainer (its ``run_step`` /
step code, compiled passes, fast weights and fused optimizers), fed the stored batches in order and the stored
meta-test domains:

* ``train_iter*.npz``: ONE iteration (a basic step with the main SGD, then a meta step with the meta SGD): losses,
  gradient summaries, parameter changes, running statistics and full parameter values after each step;
* ``train_run*.npz``: several iterations of the reference's schedule (FIRST basic steps at iteration 0, one basic
  step per later iteration, a meta step every ``meta_period`` iterations): every forward pass's losses step by
  step, the final tracked parameters, the summaries of the total change, the running statistics and the main
  optimizer's momentum buffers (what one iteration cannot show: momentum reused, the meta optimizer interleaved,
  running statistics accumulated, the schedule). It passes compiled and op by op (PyNative), and across a resume:
  stopped after the first meta step, checkpointed and loaded back into a trainer reset to a fresh state, the run
  continues to the same losses and state, bit for bit.

``*_zero_grad_v1`` are the same runs with PyTorch 1.x ``zero_grad`` semantics. Every setting (schedule, FIRST
basic steps, meta period, lrs, momentum, weight decay, meta-test domains, class counts, seeds) comes from the fixture
files. One trainer per distinct setting (and execution mode) is built and reset between runs, so the compiled graphs
are compiled once.
"""
import re

import numpy as np
import pytest

from golden import Fixture, assert_close, recipe_values, weights_spec
from model_utils import check_summaries, dr50_cfg, load_recipe
from fastreid_ms.engine.meta_train_loop import MetaLearningTrainer, concat_batches
from fastreid_ms.modeling import build_model
from fastreid_ms.solver import build_optimizer
from fastreid_ms.solver.optim import StickyGradMask
from fastreid_ms.utils.checkpoint import Checkpointer
from fastreid_ms.utils.events import EventStorage

BATCH_KEYS = ("images", "targets", "camids", "domainids")
ITER_FIXTURES = ["train_iter", "train_iter_zero_grad_v1"]
RUN_FIXTURES = ["train_run", "train_run_zero_grad_v1"]


class ReplayTrainer(MetaLearningTrainer):
    """The project's trainer fed stored batches and meta-test domains (the reference drew them at random)."""

    def replay(self, basic_batches, domain_batches, meta_test_ids):
        self._replay_basic = iter(basic_batches)
        self._replay_domains = [iter(batches) for batches in domain_batches]
        self._replay_ids = iter(meta_test_ids)

    def next_batch(self):
        return next(self._replay_basic)

    def draw_meta_test_domain(self) -> int:
        return int(next(self._replay_ids))

    def next_meta_batches(self):
        test = self.draw_meta_test_domain()
        mtrain = concat_batches([next(batches) for d, batches in enumerate(self._replay_domains) if d != test])
        return mtrain, next(self._replay_domains[test])


def _batch(fx, prefix):
    return {k: fx[f"{prefix}_{k}"] for k in BATCH_KEYS}


def _num_domains(fx, pattern):
    return len({m.group(1) for k in fx.arrays for m in [re.match(pattern, k)] if m})


def _setting(fx):
    info = fx.info
    return (float(info["lr"]), float(info["lr_meta"]), float(info["momentum"]), float(info["weight_decay"]),
            float(info.get("weight_decay_norm", info["weight_decay"])))


@pytest.fixture(scope="module")
def trainers():
    """``get(fx, compile)``: the trainer for the fixture's setting, reset to the recipe weights and fresh optimizer
    and trainer state."""
    cache = {}

    def get(fx, compile=True, keeps_tensors=None):
        lr, lr_meta, momentum, weight_decay, weight_decay_norm = _setting(fx)
        key = (_setting(fx), compile)
        if key not in cache:
            cfg = dr50_cfg(weights_spec()["baseline"]["num_classes"])
            cfg.MODEL.COMPILE = compile
            cfg.SOLVER.OPT = "SGD"
            cfg.SOLVER.BASE_LR = lr
            cfg.SOLVER.MOMENTUM = momentum
            cfg.SOLVER.WEIGHT_DECAY = cfg.SOLVER.WEIGHT_DECAY_BIAS = weight_decay
            cfg.SOLVER.WEIGHT_DECAY_NORM = weight_decay_norm
            model = build_model(cfg)
            optimizer, _ = build_optimizer(cfg, model)
            optimizer_meta, _ = build_optimizer(cfg, model, flag="meta")
            cache[key] = ReplayTrainer(model, iter(()), [iter(()), iter(())], optimizer, optimizer_meta,
                                       compile=compile)
        trainer = cache[key]
        load_recipe(trainer.model, "baseline", int(weights_spec()["baseline"]["seed_in_model_baseline_and_train_iter"]))
        for optimizer, group_lr in ((trainer.optimizer, lr), (trainer.optimizer_meta, lr_meta)):
            fresh = optimizer.state_dict()
            fresh.update(state={}, step_count=0, freeze_steps_done=0)
            optimizer.load_state_dict(fresh)
            for group in optimizer.param_groups:
                group["lr"] = group_lr
        keeps = not fx.info["zero_grad_set_to_none"] if keeps_tensors is None else keeps_tensors
        trainer.grad_mask = StickyGradMask(len(trainer.weights), keeps_tensors=keeps)
        return trainer

    return get


# ---------------------------------------------------------------------------------------------------------------
# train_iter: one iteration

@pytest.fixture(scope="module", params=ITER_FIXTURES)
def iteration(request, trainers):
    fx = Fixture(request.param)
    info = fx.info
    trainer = trainers(fx)
    num_domains = _num_domains(fx, r"dom(\d+)_images$")
    trainer.replay([_batch(fx, "basic")], [[_batch(fx, f"dom{d}")] for d in range(num_domains)],
                   [int(info["meta_test_id"])])
    params = dict(trainer.model.parameters_and_names())
    names = info["param_names"]

    def snap():
        return {n: params[n].asnumpy().copy() for n in names}

    weight_names = [p.name for p in trainer.weights]

    def grad_tensors(grads):
        """Parameters holding a .grad tensor after the step: a non-zero gradient now or, with PyTorch 1.x
        zero_grad, at any earlier step (the trainer's memory)."""
        if trainer.grad_mask.keeps_tensors:
            return {n for n, had in zip(weight_names, trainer.grad_mask.ever()) if had}
        return {n for n, g in zip(weight_names, grads) if np.any(g)}

    p0 = snap()
    with EventStorage(0):
        (l1_pass,), l1_grads = trainer.run_basic_step()
        grads1 = dict(zip(weight_names, (g.asnumpy() for g in l1_grads)))
        tensors1 = grad_tensors(grads1.values())
        p1 = snap()
        buffers1 = {n: params[n].asnumpy().copy() for n in info["buffer_names"]}
        (l2_mtrain, l2_mtest), l2_grads = trainer.run_meta_step()
        grads2 = dict(zip(weight_names, (g.asnumpy() for g in l2_grads)))
        tensors2 = grad_tensors(grads2.values())
        p2 = snap()
        buffers2 = {n: params[n].asnumpy().copy() for n in info["buffer_names"]}
    return fx, dict(p0=p0, p1=p1, p2=p2, buffers1=buffers1, buffers2=buffers2, l1_losses=l1_pass[1],
                    l2_mtrain=l2_mtrain[1], l2_mtest=l2_mtest[1], grads1=grads1, grads2=grads2, tensors1=tensors1,
                    tensors2=tensors2)


def _check_losses(fx, prefix, losses, tol):
    expected_keys = [k[len(prefix) + 1:] for k in fx.keys(prefix + "_") if k != f"{prefix}_total"]
    assert list(losses) == expected_keys, f"{prefix}: loss keys {list(losses)} != reference {expected_keys}"
    total = 0.0
    for k, v in losses.items():
        value = float(v.asnumpy())
        total += value
        assert_close(value, fx[f"{prefix}_{k}"], tol, f"{fx.name}: {prefix}_{k}")
    assert_close(total, fx[f"{prefix}_total"], tol, f"{fx.name}: {prefix}_total")


def test_iteration_losses(iteration):
    """The basic step's losses come from the fixture's weights and are held to the "loss" tolerance. The meta
    step's losses come from the weights after the basic step's SGD update, which the fixture's README bounds only
    to the "out/post" tolerance (its float32 noise is set by the stem's gradient, the least well conditioned one):
    they are held to that tolerance. Measured on AVX-512 CPUs (MindSpore 2.10): basic-step losses within 1e-6
    relative, meta-step losses within 7e-5, backbone.conv1.weight after the update within 6e-5."""
    fx, r = iteration
    _check_losses(fx, "l1_basic_loss", r["l1_losses"], fx.tol("loss"))
    _check_losses(fx, "l2_mtrain_loss", r["l2_mtrain"], fx.tol("out/post"))
    _check_losses(fx, "l2_mtest_loss", r["l2_mtest"], fx.tol("out/post"))


@pytest.mark.parametrize("step", ["l1", "l2"])
def test_iteration_gradients(iteration, step):
    fx, r = iteration
    names = fx.info["param_names"]
    grads = r["grads1" if step == "l1" else "grads2"]
    tensors = r["tensors1" if step == "l1" else "tensors2"]
    zeros = {n: np.zeros_like(r["p0"][n]) for n in names}
    arrays = [grads.get(n, zeros[n]) for n in names]
    # "present" = the parameter holds a .grad tensor (None otherwise), which the trainer's gradient mask models
    np.testing.assert_array_equal(np.array([n in tensors for n in names]), fx[f"{step}_grad_present"].astype(bool),
                                  err_msg=f"{fx.name}: {step} gradient tensors")
    np.testing.assert_array_equal(np.array([bool(np.any(a)) for a in arrays]), fx[f"{step}_grad_norm"] > 0,
                                  err_msg=f"{fx.name}: {step} non-zero gradients")
    for n in fx.info[f"{step}_no_grad"]:
        assert not np.any(grads.get(n, zeros[n])), f"{fx.name}: {n} has no {step} gradient in the reference"
    check_summaries(fx, f"{step}_grad", names, arrays, fx.tol("summary"), f"{fx.name} {step} grads")


@pytest.mark.parametrize("step", ["l1", "l2"])
def test_iteration_parameter_updates(iteration, step):
    fx, r = iteration
    names = fx.info["param_names"]
    before, after = (r["p0"], r["p1"]) if step == "l1" else (r["p1"], r["p2"])
    deltas = [after[n] - before[n] for n in names]
    got = np.array([bool(np.any(d)) for d in deltas])
    np.testing.assert_array_equal(got, fx[f"{step}_delta_norm"] > 0,
                                  err_msg=f"{fx.name}: which parameters {step} updates")
    check_summaries(fx, f"{step}_delta", names, deltas, fx.tol("summary"), f"{fx.name} {step} deltas")
    if step == "l2":
        for n in fx.info["l2_not_updated"]:
            np.testing.assert_array_equal(r["p2"][n], r["p1"][n], err_msg=f"{fx.name}: {n} must not change in l2")


def test_iteration_parameter_values(iteration):
    fx, r = iteration
    for key in fx.keys("p0_") + fx.keys("p1_") + fx.keys("p2_"):
        stage, name = key.split("_", 1)
        if name.startswith("slice_"):
            value = r[stage][name[len("slice_"):]][:4, :4]
        else:
            value = r[stage][name]
        assert_close(value, fx[key], fx.tol("out/post"), f"{fx.name}: {key}")


def test_iteration_running_statistics(iteration):
    fx, r = iteration
    names = fx.info["buffer_names"]
    check_summaries(fx, "l1_post_buf", names, [r["buffers1"][n] for n in names], fx.tol("out/post"),
                    f"{fx.name} running stats after l1")
    changed = [n for n in names if not np.array_equal(r["buffers1"][n], r["buffers2"][n])]
    assert changed == list(fx.info["buffers_changed_by_learning2"])


# ---------------------------------------------------------------------------------------------------------------
# train_run: several iterations, compiled and op by op, and across a resume

def _run_batches(fx, first_step=0):
    """The stored batches from schedule step ``first_step`` on: the mixed batches of the basic steps in order, and
    per source domain the batches of the meta steps in order (each meta step draws one batch of every domain)."""
    schedule = fx.info["schedule"]
    basic = [_batch(fx, f"s{i}_basic") for i, kind in enumerate(schedule) if kind == "basic" and i >= first_step]
    domains = [[_batch(fx, f"s{i}_dom{d}") for i, kind in enumerate(schedule) if kind == "meta" and i >= first_step]
               for d in range(_num_domains(fx, r"s\d+_dom(\d+)_images$"))]
    return basic, domains


def _start_run(trainers, fx, compile=True, first_step=0):
    info = fx.info
    trainer = trainers(fx, compile)
    trainer.meta_period = int(info["meta_period"])
    trainer.first_iter_basic_steps = int(info["first_iter_basic_steps"])
    basic, domains = _run_batches(fx, first_step)
    used = sum(1 for kind in info["schedule"][:first_step] if kind == "meta")
    trainer.replay(basic, domains, info["meta_test_ids"][used:])
    return trainer


def _run(trainer, iterations):
    with EventStorage(iterations[0]) as storage:
        for it in iterations:
            trainer.iter = storage.iter = it
            trainer.run_step()
        return storage.pop_step_losses()


def _final_state(fx, trainer):
    params = dict(trainer.model.parameters_and_names())
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


@pytest.fixture(scope="module", params=[("train_run", True), ("train_run_zero_grad_v1", True), ("train_run", False)],
                ids=["train_run-compiled", "train_run_zero_grad_v1-compiled", "train_run-pynative"])
def replay(request, trainers):
    name, compile = request.param
    fx = Fixture(name)
    trainer = _start_run(trainers, fx, compile)
    records = _run(trainer, list(range(int(fx.info["iters"]))))
    return fx, records, _final_state(fx, trainer)


def _expected_passes(fx):
    """(step index, phase) of every forward pass in the fixture's order."""
    passes = []
    for i, kind in enumerate(fx.info["schedule"]):
        passes.extend([(i, "basic")] if kind == "basic" else [(i, "mtrain"), (i, "mtest")])
    return passes


def test_run_schedule_and_losses_step_by_step(replay):
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


def test_run_final_parameters(replay):
    fx, _, final = replay
    for key in fx.keys("pN_"):
        name = key[len("pN_"):]
        if name.startswith("slice_"):
            value = final["params"][name[len("slice_"):]][:4, :4]
        else:
            value = final["params"][name]
        assert_close(value, fx[key], fx.tol("out/post"), f"{fx.name}: {key}")


def test_run_total_parameter_change(replay):
    fx, _, final = replay
    names = fx.info["param_names"]
    spec = weights_spec()["baseline"]
    p0 = recipe_values(spec["state_dict"], int(spec["seed_in_model_baseline_and_train_iter"]))
    for key in fx.keys("p0_"):
        np.testing.assert_array_equal(p0[key[3:]], fx[key], err_msg=f"{fx.name}: recipe differs from {key}")
    deltas = [final["params"][n] - p0[n] for n in names]
    np.testing.assert_array_equal(np.array([bool(np.any(d)) for d in deltas]), fx["final_delta_norm"] > 0,
                                  err_msg=f"{fx.name}: which parameters the run changes")
    check_summaries(fx, "final_delta", names, deltas, fx.tol("summary"), f"{fx.name} total change")


def test_run_running_statistics(replay):
    fx, _, final = replay
    names = fx.info["buffer_names"]
    check_summaries(fx, "final_buf", names, [final["buffers"][n] for n in names], fx.tol("out/post"),
                    f"{fx.name} running statistics")


def test_run_momentum_buffers(replay):
    """The main optimizer's momentum buffers: which parameters have one (created on their first update) and their
    summaries."""
    fx, _, final = replay
    names = fx.info["param_names"]
    present = np.array([final["momentum"][n] is not None for n in names])
    np.testing.assert_array_equal(present, fx["final_momentum_present"].astype(bool),
                                  err_msg=f"{fx.name}: which parameters have a momentum buffer")
    arrays = [final["momentum"][n] if final["momentum"][n] is not None else np.zeros(1, np.float32) for n in names]
    check_summaries(fx, "final_momentum", names, arrays, fx.tol("summary"), f"{fx.name} momentum buffers")


def test_run_resumes_after_the_first_meta_step(trainers, tmp_path):
    """Stop after the first meta step (the end of its iteration), checkpoint, reset the trainer (recipe weights,
    empty optimizer and trainer state: what a fresh process starts from), load the checkpoint and replay the
    remaining iterations: the same per-pass losses and final parameters, running statistics and momentum buffers
    as the uninterrupted run, bit for bit. The checkpoint is loaded into a trainer whose graphs are compiled (the
    case where writing Parameters with ``set_data`` would go unseen)."""
    fx = Fixture(RUN_FIXTURES[0])
    info = fx.info
    iteration_of_step = info["iteration_of_step"]
    stop_iter = iteration_of_step[info["schedule"].index("meta")]
    resume_step = next(i for i, it in enumerate(iteration_of_step) if it > stop_iter)
    iters = int(info["iters"])

    trainer = _start_run(trainers, fx)
    uninterrupted_records = _run(trainer, list(range(iters)))
    uninterrupted = _final_state(fx, trainer)

    trainer = _start_run(trainers, fx)
    records = _run(trainer, list(range(stop_iter + 1)))
    checkpointer = Checkpointer(trainer.model, str(tmp_path), optimizer=trainer.optimizer,
                                optimizer_meta=trainer.optimizer_meta, trainer=trainer)
    checkpointer.save("model_stop")

    trainer = _start_run(trainers, fx, first_step=resume_step)
    assert not np.array_equal(trainer.model.backbone.conv1.weight.asnumpy(),
                              uninterrupted["params"]["backbone.conv1.weight"])
    checkpointer.load(str(tmp_path / "model_stop.ckpt"))
    records += _run(trainer, list(range(stop_iter + 1, iters)))
    resumed = _final_state(fx, trainer)

    assert records == uninterrupted_records
    for part in ("params", "buffers"):
        for n, value in uninterrupted[part].items():
            np.testing.assert_array_equal(resumed[part][n], value, err_msg=f"{part} {n} after resume")
    for n, value in uninterrupted["momentum"].items():
        if value is None:
            assert resumed["momentum"][n] is None, n
        else:
            np.testing.assert_array_equal(resumed["momentum"][n], value, err_msg=f"momentum {n} after resume")
