"""SimpleTrainer / AMPTrainer / DynamicGradScaler (fastreid_ms/engine/train_loop.py) on a tiny model."""
import itertools

import mindspore
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn, ops

from fastreid_ms.engine.train_loop import AMPTrainer, DynamicGradScaler, SimpleTrainer
from fastreid_ms.solver import SGD


class _Linear(nn.Cell):
    """The trainer's model protocol on a linear map: images (N, 3, 1, 1) -> x (N, 3); loss_mse = mean((x w -
    onehot(y))^2), loss_l1 = 0.1 * sum |w|; ``unused`` never reaches a loss."""

    is_meta = False

    def __init__(self, w):
        super().__init__()
        self.w = Parameter(Tensor(w), name="w")
        self.unused = Parameter(Tensor(np.ones(2, np.float32)), name="unused")

    def loss_names(self, phase="basic"):
        return ("loss_mse", "loss_l1")

    def construct(self, images, targets, domainids=None, phase="basic", update_stats=None):
        pred = ops.matmul(images.reshape(images.shape[0], -1), self.w)
        onehot = ops.one_hot(targets, 2, Tensor(1.0, mindspore.float32), Tensor(0.0, mindspore.float32))
        return {"loss_mse": ((pred - onehot) ** 2).mean(), "loss_l1": 0.1 * ops.abs(self.w).sum()}


def _batches(rng, n):
    return [{"images": rng.standard_normal((4, 3, 1, 1)).astype(np.float32),
             "targets": rng.integers(0, 2, 4).astype(np.int64), "img_paths": np.array(["a", "b", "c", "d"])}
            for _ in range(n)]


def _numpy_grad(w, batch):
    x = batch["images"].reshape(4, 3).astype(np.float64)
    y = np.eye(2)[batch["targets"]]
    return 2 * x.T @ (x @ w - y) / y.size + 0.1 * np.sign(w)


@pytest.mark.parametrize("compile", [True, False])
def test_simple_trainer_steps_match_numpy_sgd_and_logs_metrics(compile):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 2)).astype(np.float32)
    batches = _batches(rng, 3)
    model = _Linear(w0)
    opt = SGD(model.trainable_params(), lr=0.1, momentum=0.0, compile=compile)
    trainer = SimpleTrainer(model, itertools.cycle(batches), opt, compile=compile)
    assert [p.name for p in trainer.weights] == ["w", "unused"]
    trainer.train(0, 1, 3)
    w = w0.astype(np.float64)
    for b in batches:
        w = w - 0.1 * _numpy_grad(w, b)
    np.testing.assert_allclose(model.w.asnumpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.unused.asnumpy(), np.ones(2, np.float32))  # zero gradient, no decay
    hist = trainer.storage.histories()
    assert {"total_loss", "loss_mse", "loss_l1", "data_time"} <= set(hist)
    assert hist["total_loss"].latest() == pytest.approx(hist["loss_mse"].latest() + hist["loss_l1"].latest())
    records = trainer.storage.step_losses()
    assert [(r["iteration"], r["phase"]) for r in records] == [(0, "basic"), (1, "basic"), (2, "basic")]
    assert records[-1]["loss_mse"] == pytest.approx(hist["loss_mse"].latest())


def test_train_pass_returns_named_losses_gradients_and_scaled_gradients():
    rng = np.random.default_rng(1)
    model = _Linear(rng.standard_normal((3, 2)).astype(np.float32))
    model.set_train(True)
    trainer = SimpleTrainer(model, iter([]), SGD(model.trainable_params(), lr=0.1))
    batch = _batches(rng, 1)[0]
    loss_dict, grads = trainer.train_pass(batch)
    assert list(loss_dict) == ["loss_mse", "loss_l1"] and len(grads) == 2
    np.testing.assert_allclose(grads[0].asnumpy(), _numpy_grad(model.w.asnumpy().astype(np.float64), batch),
                               rtol=1e-5, atol=1e-6)
    assert not np.any(grads[1].asnumpy())
    trainer.train_pass.loss_scale = Tensor(8.0)
    scaled_losses, scaled = trainer.train_pass(batch)
    np.testing.assert_allclose(scaled[0].asnumpy(), 8 * grads[0].asnumpy(), rtol=1e-6)
    assert float(scaled_losses["loss_mse"].asnumpy()) == pytest.approx(float(loss_dict["loss_mse"].asnumpy()))


def test_nan_loss_raises_naming_iteration_and_losses_before_the_update():
    rng = np.random.default_rng(2)
    batches = _batches(rng, 3)
    batches[2]["images"][0, 0] = np.nan
    model = _Linear(rng.standard_normal((3, 2)).astype(np.float32))
    trainer = SimpleTrainer(model, iter(batches), SGD(model.trainable_params(), lr=0.1))
    with pytest.raises(FloatingPointError, match=r"iteration=8!\nloss_dict = .*'loss_mse': nan"):
        trainer.train(2, 3, 3)
    assert np.all(np.isfinite(model.w.asnumpy()))
    model.set_train(False)
    with pytest.raises(RuntimeError, match="eval mode"):
        trainer.run_step()


def test_amp_trainer_refuses_cpu():
    model = _Linear(np.zeros((3, 2), np.float32))
    with pytest.raises(RuntimeError, match="GPU or Ascend.*CPU backend has no float16"):
        AMPTrainer(model, iter([]), SGD(model.trainable_params(), lr=0.1))


def test_dynamic_grad_scaler_skips_overflow_steps_and_adjusts_the_scale():
    p = Parameter(Tensor(np.ones(2, np.float32)), name="p")
    opt = SGD([p], lr=1.0)
    scaler = DynamicGradScaler(init_scale=8.0, growth_factor=2, growth_interval=2)
    assert scaler.get_scale() == 8.0
    assert scaler.step(opt, [Tensor(np.array([8.0, 16.0], np.float32))]) is not None
    scaler.update()
    np.testing.assert_allclose(p.asnumpy(), [0.0, -1.0])  # unscaled gradient [1, 2]
    assert scaler.step(opt, [Tensor(np.array([np.inf, 1.0], np.float32))]) is None
    scaler.update()
    np.testing.assert_allclose(p.asnumpy(), [0.0, -1.0])
    assert scaler.get_scale() == 4.0
    for _ in range(2):
        assert scaler.step(opt, [Tensor(np.zeros(2, np.float32))]) is not None
        scaler.update()
    assert scaler.get_scale() == 8.0
    state = scaler.state_dict()
    other = DynamicGradScaler(init_scale=1.0)
    other.load_state_dict(state)
    assert other.state_dict() == state
