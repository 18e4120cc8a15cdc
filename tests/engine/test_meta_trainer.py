"""MetaLearningTrainer pieces the golden training fixtures do not isolate: the fast-weight writes (exact, restored
after an error, visible to compiled graphs), the inner step sizes, the schedule of basic/meta steps, batch
concatenation and the trainer state a resume needs."""
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

import mindspore
from fastreid_ms.engine.meta_train_loop import (FastWeights, MetaLearningTrainer, concat_batches, meta_step_sizes,
                                                sum_gradients)


class _Scale(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.array([1.0, -0.0, 3.0], np.float32)), name="w")
        self.v = Parameter(Tensor(np.array([2.0, 4.0], np.float32)), name="v")

    def construct(self, x):
        return (self.w * x).sum() + self.v.sum()


@pytest.mark.parametrize("compile", [True, False])
def test_fast_weights_are_written_in_place_and_restored_exactly(compile):
    cell = _Scale()
    forward = mindspore.jit(cell.construct) if compile else cell.construct
    x = Tensor(np.ones(3, np.float32))
    assert float(forward(x).asnumpy()) == 10.0          # a compiled graph has run with the slow weights
    fast = FastWeights([cell.w, cell.v], compile=compile)
    grads = (Tensor(np.array([2.0, 0.0, 0.0], np.float32)), Tensor(np.zeros(2, np.float32)))
    with fast(grads, np.array([0.5, 0.25], np.float32)):
        np.testing.assert_array_equal(cell.w.asnumpy(), [0.0, -0.0, 3.0])
        assert float(forward(x).asnumpy()) == 9.0       # the graph sees the fast weights
    np.testing.assert_array_equal(cell.w.asnumpy(), [1.0, -0.0, 3.0])
    assert np.signbit(cell.w.asnumpy()[1]), "the restore must be bit-exact (keeps -0.0)"
    np.testing.assert_array_equal(cell.v.asnumpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match="boom"):
        with fast(grads, np.array([0.5, 0.25], np.float32)):
            raise RuntimeError("boom")
    np.testing.assert_array_equal(cell.w.asnumpy(), [1.0, -0.0, 3.0])
    assert float(forward(x).asnumpy()) == 10.0
    with pytest.raises(ValueError, match="1 gradients and 2 step sizes for 2 parameters"):
        with fast(grads[:1], [0.1, 0.1]):
            pass


def test_meta_step_sizes_halve_adaptor_parameters_and_gradients_sum():
    steps = meta_step_sizes(["backbone.adaptor1_sub.conv1.weight", "backbone.adaptor4_base.bn1.weight",
                             "backbone.router1.fc1.weight", "heads.center.centers"], 0.02)
    np.testing.assert_allclose(steps, [0.01, 0.01, 0.02, 0.02])
    a = (Tensor(np.ones(2, np.float32)), Tensor(np.zeros(1, np.float32)))
    b = (Tensor(np.full(2, 2.0, np.float32)), Tensor(np.ones(1, np.float32)))
    summed = mindspore.jit(sum_gradients)(mindspore.mutable(a), mindspore.mutable(b))
    np.testing.assert_array_equal(summed[0].asnumpy(), [3.0, 3.0])
    np.testing.assert_array_equal(summed[1].asnumpy(), [1.0])


def test_concat_batches_follows_torch_cat():
    a = {"images": np.zeros((2, 1)), "targets": np.array([1, 2])}
    b = {"images": np.ones((3, 1)), "targets": np.array([3, 4, 5])}
    cat = concat_batches([a, b])
    np.testing.assert_array_equal(cat["targets"], [1, 2, 3, 4, 5])
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

    def run_meta_step(self):
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


def test_meta_test_domains_are_uniform_seeded_and_resumable():
    t = MetaLearningTrainer.__new__(MetaLearningTrainer)
    t.domain_loaders = [None, None, None]
    t.meta_rng = np.random.RandomState(5)
    draws = [t.draw_meta_test_domain() for _ in range(300)]
    assert set(draws) == {0, 1, 2} and min(np.bincount(draws)) > 70
    t.meta_rng = np.random.RandomState(5)
    assert [t.draw_meta_test_domain() for _ in range(10)] == draws[:10]
