"""The model passes (fastreid_ms/modeling/passes.py): compiled and op-by-op runs agree, batches are validated on the
host with clear errors, the eval pass pads a short batch, the DataParallel emulation cuts batches like
``torch.chunk`` and averages the chunks with running statistics from the first one, and weights loaded after a
graph has run are the ones it computes with."""
from pathlib import Path

import numpy as np
import pytest
from mindspore import Tensor

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling import build_model
from fastreid_ms.modeling.passes import EvalPass, TrainPass, batch_arrays, process_chunks, replica_chunks
from fastreid_ms.utils.state_dict import load_torch_state_dict

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    """A small FastReID Baseline (ResNet-18, BNNeck, CE + triplet) on 32x16 images."""
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "Base-bagtricks.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.BACKBONE.DEPTH = "18x"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    cfg.MODEL.HEADS.NUM_CLASSES = 4
    return build_model(cfg)


def _batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return {"images": rng.integers(0, 256, (n, 3, 32, 16)).astype(np.float32),
            "targets": np.repeat(np.arange(n // 2) % 4, 2).astype(np.int64), "camids": np.zeros(n, np.int64)}


def _buffers(model):
    return {n: p.asnumpy().copy() for n, p in model.parameters_and_names() if "running_" in n}


def _restore(model, buffers):
    params = dict(model.parameters_and_names())
    load_torch_state_dict(model, {**{n: p.asnumpy() for n, p in params.items()}, **buffers})


def test_compiled_eval_pass_equals_op_by_op_and_pads_short_batches(model):
    batch = _batch(6)
    compiled, eager = EvalPass(model), EvalPass(model, compile=False)
    features = compiled(batch["images"])
    np.testing.assert_allclose(features, eager(batch["images"]), rtol=1e-5, atol=1e-6)
    short = compiled(batch["images"][:4])   # padded to the compiled batch of 6: the same rows, the same values
    assert short.shape == (4, 512)
    np.testing.assert_allclose(short, features[:4], rtol=1e-6, atol=1e-7)
    assert model.training is False


def test_compiled_train_pass_equals_op_by_op(model):
    batch = _batch(6)
    model.set_train(True)
    start = _buffers(model)
    weights = model.trainable_params()
    losses_c, grads_c = TrainPass(model, weights)(batch)
    after_compiled = _buffers(model)
    _restore(model, start)
    losses_e, grads_e = TrainPass(model, weights, compile=False)(batch)
    assert list(losses_c) == list(losses_e) == list(model.loss_names())
    for k in losses_c:
        np.testing.assert_allclose(losses_c[k].asnumpy(), losses_e[k].asnumpy(), rtol=1e-5, err_msg=k)
    for p, a, b in zip(weights, grads_c, grads_e):
        a, b = a.asnumpy(), b.asnumpy()
        assert np.linalg.norm(a - b) <= 1e-4 * max(np.linalg.norm(b), 1e-12), p.name
    for n, value in _buffers(model).items():
        np.testing.assert_allclose(after_compiled[n], value, rtol=1e-5, atol=1e-6, err_msg=n)
        assert not np.array_equal(start[n], value), f"{n}: the basic phase updates running statistics"


def test_replica_chunks_follow_torch_chunk():
    assert replica_chunks(5, 4) == ((0, 2), (2, 2), (4, 1))   # torch.chunk(5 rows, 4): sizes 2, 2, 1
    assert replica_chunks(64, 4) == ((0, 16), (16, 16), (32, 16), (48, 16))
    assert replica_chunks(3, 1) == ((0, 3),)


def test_processes_share_out_the_replica_chunks():
    """P processes of R replicas: process p computes chunks p*R/P .. (p+1)*R/P - 1 of every global batch."""
    assert process_chunks(64, 4) == replica_chunks(64, 4)
    assert process_chunks(64, 4, rank=0, world_size=2) == ((0, 16), (16, 16))
    assert process_chunks(64, 4, rank=1, world_size=2) == ((32, 16), (48, 16))
    assert process_chunks(16, 4, rank=3, world_size=4) == ((12, 4),)
    with pytest.raises(ValueError, match="SOLVER.DP_REPLICAS=3 must be a multiple of the number of processes 2"):
        process_chunks(12, 3, rank=0, world_size=2)
    with pytest.raises(ValueError, match="a batch of 5 images gives 3 torch.chunk chunks, not SOLVER.DP_REPLICAS=4"):
        process_chunks(5, 4, rank=0, world_size=2)


def test_dataparallel_emulation_averages_chunks_and_keeps_first_chunk_statistics(model):
    batch = _batch(6, seed=1)
    model.set_train(True)
    start = _buffers(model)
    per_chunk, after_first = [], None
    for i, (begin, size) in enumerate(replica_chunks(6, 3)):
        chunk = {k: v[begin:begin + size] for k, v in batch.items()}
        losses, _ = TrainPass(model, model.trainable_params(), compile=False)(chunk)
        per_chunk.append({k: float(v.asnumpy()) for k, v in losses.items()})
        if i == 0:
            after_first = _buffers(model)
    _restore(model, start)
    losses, _ = TrainPass(model, model.trainable_params(), replicas=3)(batch)
    for k, v in losses.items():
        np.testing.assert_allclose(float(v.asnumpy()), np.mean([c[k] for c in per_chunk]), rtol=1e-5, err_msg=k)
    for n, value in _buffers(model).items():
        np.testing.assert_allclose(value, after_first[n], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{n}: running statistics must come from the first chunk only")


def test_weights_loaded_after_a_compiled_run_are_used(model):
    """MindSpore graphs keep their own reference to a Parameter's memory once they ran: a checkpoint loaded with
    set_data would be invisible to them. Loading writes in place, so the compiled pass sees the new weights."""
    eval_pass = EvalPass(model)
    images = _batch(6)["images"]
    before = eval_pass(images)
    state = {n: p.asnumpy() * (1.5 if n.endswith("bottleneck.0.weight") else 1.0)
             for n, p in model.parameters_and_names()}
    load_torch_state_dict(model, state)
    np.testing.assert_allclose(eval_pass(images), EvalPass(model, compile=False)(images), rtol=1e-5, atol=1e-6)
    assert not np.allclose(eval_pass(images), before)


def test_batches_are_validated_on_the_host_with_clear_errors(model):
    batch = _batch(4)
    with pytest.raises(KeyError, match="'targets'"):
        batch_arrays({"images": batch["images"]})
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        batch_arrays({**batch, "images": batch["images"][:, :2]})
    with pytest.raises(ValueError, match="must hold integers"):
        batch_arrays({**batch, "targets": batch["targets"].astype(np.float32)}, domains=False)
    with pytest.raises(ValueError, match="3 entries for 4 images"):
        batch_arrays({**batch, "targets": batch["targets"][:3]}, domains=False)
    model.set_train(True)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        TrainPass(model, model.trainable_params())({**batch, "targets": np.array([0, 0, 9, 9], np.int64)})
    model.set_train(False)
    with pytest.raises(RuntimeError, match="training mode"):
        TrainPass(model, model.trainable_params())(batch)
    assert isinstance(EvalPass(model)(Tensor(batch["images"])), np.ndarray)
