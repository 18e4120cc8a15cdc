"""MetaLearningTrainer pieces the golden train_iter fixtures do not isolate: the swapped-in fast weights equal the
model's functional fast-weight path, the schedule of basic/meta steps, batch concatenation/splitting, and the
DataParallel emulation (per-chunk losses averaged, running statistics from the first chunk only)."""
import itertools

import numpy as np
import pytest
from mindspore import Tensor

from fastreid_ms.config import get_cfg
from fastreid_ms.engine.meta_train_loop import MetaLearningTrainer, concat_batches, fast_weights, split_batch
from fastreid_ms.engine.train_loop import SimpleTrainer
from fastreid_ms.modeling import build_model
from fastreid_ms.modeling.ops import MetaOpt, meta_step_sizes, opt_setting
from fastreid_ms.solver import build_optimizer
from fastreid_ms.utils.events import EventStorage

CLASSES = (3, 2, 3)


def _cfg():
    cfg = get_cfg()
    cfg.merge_from_file("configs/bagtricks_DR50_mix.yml")
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES1, cfg.MODEL.HEADS.NUM_CLASSES2, cfg.MODEL.HEADS.NUM_CLASSES3 = CLASSES
    return cfg


def _batch(rng, domains, n=4):
    offsets = np.cumsum((0,) + CLASSES)
    targets, doms = [], []
    for d in domains:
        ids = rng.choice(CLASSES[d], size=n // 2, replace=False) + offsets[d]
        targets.extend(np.repeat(ids, 2))
        doms.extend([d] * n)
    m = len(targets)
    return {"images": rng.uniform(0, 255, (m, 3, 64, 32)).astype(np.float32),
            "targets": np.asarray(targets, np.int64), "camids": np.zeros(m, np.int64),
            "domainids": np.asarray(doms, np.int64)}


@pytest.fixture(scope="module")
def model_and_opts():
    cfg = _cfg()
    model = build_model(cfg)
    model.set_train(True)
    return cfg, model


def test_swapped_fast_weights_equal_functional_fast_weights(model_and_opts):
    cfg, model = model_and_opts
    optimizer, _ = build_optimizer(cfg, model)
    rng = np.random.default_rng(0)
    weights = optimizer.parameters
    names = [p.name for p in weights]
    stepper = SimpleTrainer(model, iter(()), optimizer)
    _, _, g_tr = stepper.loss_and_grads(_batch(rng, (0, 2)), weights, opt_setting("mtrain"))
    fast = {n: g for n, g in zip(names, g_tr) if np.any(g.asnumpy())}
    steps = meta_step_sizes(fast, 0.05)
    mtest = _batch(rng, (1,))
    before = {n: p.asnumpy().copy() for n, p in zip(names, weights)}

    functional, _, g_functional = stepper.loss_and_grads(mtest, weights, opt_setting("mtest", fast, steps))
    with fast_weights(weights, fast, steps):
        swapped, _, g_swapped = stepper.loss_and_grads(mtest, weights, opt_setting("mtest"))
    assert list(functional) == list(swapped)
    for k in functional:
        np.testing.assert_allclose(swapped[k].asnumpy(), functional[k].asnumpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    for n, a, b in zip(names, g_swapped, g_functional):
        a, b = a.asnumpy(), b.asnumpy()
        assert np.linalg.norm(a - b) <= 1e-4 * max(np.linalg.norm(b), 1e-12), n
    for n, p in zip(names, weights):
        np.testing.assert_array_equal(p.asnumpy(), before[n], err_msg=f"{n} not restored after the meta-test pass")


def test_fast_weights_are_restored_after_an_error():
    from mindspore import Parameter, Tensor

    p = Parameter(Tensor(np.ones(3, np.float32)), name="w")
    with pytest.raises(RuntimeError):
        with fast_weights([p], {"w": Tensor(np.full(3, 2.0, np.float32))}, {"w": 0.5}):
            np.testing.assert_array_equal(p.asnumpy(), np.zeros(3))
            raise RuntimeError("boom")
    np.testing.assert_array_equal(p.asnumpy(), np.ones(3))


def test_concat_and_split_batches_follow_torch_cat_and_chunk():
    a = {"images": np.zeros((2, 1)), "targets": np.array([1, 2])}
    b = {"images": np.ones((3, 1)), "targets": np.array([3, 4, 5])}
    cat = concat_batches([a, b])
    np.testing.assert_array_equal(cat["targets"], [1, 2, 3, 4, 5])
    chunks = split_batch(cat, 4)  # torch.chunk(5, 4): sizes 2, 2, 1
    assert [len(c["targets"]) for c in chunks] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([c["targets"] for c in chunks]), cat["targets"])
    with pytest.raises(KeyError):
        concat_batches([a, {"images": np.zeros((1, 1))}])


class _CountingTrainer(MetaLearningTrainer):
    def __init__(self):
        self.calls = []
        self.iter = 0
        self.first_iter_basic_steps = 10
        self.meta_period = 3
        self.model = type("M", (), {"training": True})()

    def run_basic_step(self):
        self.calls.append(("basic", self.iter))

    def run_meta_step(self, meta_test_domain=None):
        self.calls.append(("meta", self.iter))


def test_schedule_ten_basic_steps_at_iteration_zero_and_meta_every_third():
    t = _CountingTrainer()
    for it in range(7):
        t.iter = it
        t.run_step()
    basic = [i for kind, i in t.calls if kind == "basic"]
    meta = [i for kind, i in t.calls if kind == "meta"]
    assert basic == [0] * 10 + [1, 2, 3, 4, 5, 6]
    assert meta == [0, 3, 6]


def test_data_parallel_emulation_averages_chunks_and_keeps_first_chunk_statistics(model_and_opts):
    cfg, model = model_and_opts
    rng = np.random.default_rng(1)
    batch = _batch(rng, (0, 1, 2), n=2)
    optimizer, _ = build_optimizer(cfg, model)
    meta_opt, _ = build_optimizer(cfg, model, flag="meta")
    trainer = MetaLearningTrainer(model, itertools.repeat(batch), [itertools.repeat(batch)] * 3, optimizer, meta_opt,
                                  dp_replicas=3)
    buffers = {n: p for n, p in model.parameters_and_names() if n.endswith(("running_mean", "running_var"))}
    start = {n: p.asnumpy().copy() for n, p in buffers.items()}

    chunks = split_batch(batch, 3)
    per_chunk = []
    for i, chunk in enumerate(chunks):
        losses = model(chunk, opt_setting("basic") if i == 0 else MetaOpt(type="basic", type_running_stats="hold"))
        per_chunk.append({k: float(v.asnumpy()) for k, v in losses.items()})
    after_first_chunk = {n: p.asnumpy().copy() for n, p in buffers.items()}
    for n, p in buffers.items():
        p.set_data(Tensor(start[n]))

    with EventStorage(0):
        losses, _ = trainer.losses_and_grads(batch, opt_setting("basic"))
    for k, v in losses.items():
        expected = np.mean([c[k] for c in per_chunk])
        np.testing.assert_allclose(float(v.asnumpy()), expected, rtol=1e-5, err_msg=k)
    for n, p in buffers.items():
        np.testing.assert_allclose(p.asnumpy(), after_first_chunk[n], rtol=1e-6, atol=1e-7,
                                   err_msg=f"{n}: running statistics must come from the first chunk only")
