"""Meta-learning op semantics not covered by the golden fixtures: fast-weight selection by name, frozen parameters,
step sizes, opt validation and BatchNorm running-statistic modes."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor

from fastreid_ms.modeling.ops import (MetaBNNorm, MetaINNorm, MetaLinear, MetaOpt, MetaParam, fast_param,
                                      meta_step_sizes, opt_setting)

RNG = np.random.default_rng(7)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def test_opt_setting_flags():
    basic, mtrain, mtest = opt_setting("basic"), opt_setting("mtrain"), opt_setting("mtest", {}, {})
    assert (basic.type, basic.type_running_stats, basic.meta) == ("basic", "general", False)
    assert (mtrain.type, mtrain.type_running_stats, mtrain.meta) == ("mtrain", "hold", False)
    assert (mtest.type, mtest.type_running_stats, mtest.meta) == ("mtest", "hold", True)
    with pytest.raises(ValueError, match="flag"):
        opt_setting("meta")
    with pytest.raises(ValueError, match="type_running_stats"):
        MetaOpt(type="basic", type_running_stats="frozen")
    with pytest.raises(ValueError, match="step_sizes"):
        MetaOpt(type="mtest", type_running_stats="hold", meta=True, fast_grads={"w": Tensor(_rand(2))})


def test_meta_step_sizes_halve_adaptor_parameters():
    steps = meta_step_sizes(["backbone.conv1.weight", "backbone.adaptor1_sub.conv2.weight",
                             "backbone.adaptor3_base.bn1.bias", "heads.weight1.weight"], 0.02)
    assert steps == {"backbone.conv1.weight": 0.02, "backbone.adaptor1_sub.conv2.weight": 0.01,
                     "backbone.adaptor3_base.bn1.bias": 0.01, "heads.weight1.weight": 0.02}
    assert meta_step_sizes(["adaptor2_base.conv1.weight"], 0.1, adaptor_factor=0.25) == \
        {"adaptor2_base.conv1.weight": 0.025}


def test_linear_uses_fast_weight_only_for_parameters_with_a_fast_gradient():
    layer = MetaLinear(5, 3, bias=True)
    x = _rand(4, 5)
    w, b = layer.weight.asnumpy(), layer.bias.asnumpy()
    g_w = _rand(3, 5)
    opt = opt_setting("mtest", {"weight": Tensor(g_w)}, {"weight": 0.5, "bias": 0.5})
    out = layer(Tensor(x), opt).asnumpy()
    np.testing.assert_allclose(out, x @ (w - 0.5 * g_w).T + b, rtol=1e-5, atol=1e-6)
    # meta False (mtrain): the slow weight even though fast gradients are present
    slow = layer(Tensor(x), MetaOpt(type="mtrain", type_running_stats="hold", meta=False,
                                    fast_grads={"weight": Tensor(g_w)}, step_sizes={"weight": 0.5})).asnumpy()
    np.testing.assert_allclose(slow, x @ w.T + b, rtol=1e-5, atol=1e-6)


def test_fast_weight_gradient_reaches_the_slow_parameter_and_not_the_fast_gradient():
    centers = MetaParam(4, 3)
    x = Tensor(_rand(2, 4))
    g = Tensor(_rand(3, 4))
    opt = opt_setting("mtest", {"centers": g}, {"centers": 0.1})

    def objective(grad_in):
        return centers(x, MetaOpt(type="mtest", type_running_stats="hold", meta=True,
                                  fast_grads={"centers": grad_in}, step_sizes={"centers": 0.1})).sum()

    grad_of_fast_grad = ms.grad(objective, 0)(g)
    assert not np.any(grad_of_fast_grad.asnumpy()), "the fast gradient must be a constant (first order)"
    grads = ms.grad(lambda: centers(x, opt).sum(), None, [centers.centers])()
    c_fast = centers.centers.asnumpy() - 0.1 * g.asnumpy()
    # d/dc sum_ij (|x_i|^2 + |c_j|^2 - 2 x_i.c_j) = N * 2 c_j - 2 sum_i x_i, evaluated at the FAST centres
    expected = 2 * x.shape[0] * c_fast - 2 * x.asnumpy().sum(0, keepdims=True)
    np.testing.assert_allclose(grads[0].asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_frozen_bias_is_never_meta_updated_and_missing_step_size_is_an_error():
    bn = MetaBNNorm(3, bias_freeze=True)
    assert not bn.bias.requires_grad and bn.weight.requires_grad
    opt = opt_setting("mtest", {"bias": Tensor(np.ones(3, np.float32))}, {"bias": 1.0})
    assert fast_param(bn.bias, opt) is bn.bias
    layer = MetaLinear(2, 2)
    with pytest.raises(KeyError, match="weight"):
        fast_param(layer.weight, opt_setting("mtest", {"weight": Tensor(_rand(2, 2))}, {"other": 1.0}))
    with pytest.raises(ValueError, match="shape"):
        fast_param(layer.weight, opt_setting("mtest", {"weight": Tensor(_rand(3, 2))}, {"weight": 1.0}))


def test_batchnorm_modes_and_running_statistics():
    bn = MetaBNNorm(4)
    x = _rand(6, 4, 3, 2) * 2 + 1
    mean0, var0 = bn.running_mean.asnumpy().copy(), bn.running_var.asnumpy().copy()
    bn.set_train(True)
    batch_norm = (x - x.mean((0, 2, 3), keepdims=True)) / np.sqrt(x.var((0, 2, 3), keepdims=True) + 1e-5)
    for opt in (None, opt_setting("mtrain"), opt_setting("mtest", {}, {})):
        np.testing.assert_allclose(bn(Tensor(x), opt).asnumpy(), batch_norm, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(bn.running_mean.asnumpy(), mean0)
        np.testing.assert_array_equal(bn.running_var.asnumpy(), var0)
    np.testing.assert_allclose(bn(Tensor(x), opt_setting("basic")).asnumpy(), batch_norm, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.asnumpy(), 0.1 * x.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.asnumpy(), 0.9 + 0.1 * x.var((0, 2, 3), ddof=1), rtol=1e-5)
    bn.set_train(False)
    rm, rv = bn.running_mean.asnumpy(), bn.running_var.asnumpy()
    expected = (x - rm.reshape(1, -1, 1, 1)) / np.sqrt(rv.reshape(1, -1, 1, 1) + 1e-5)
    np.testing.assert_allclose(bn(Tensor(x), opt_setting("basic")).asnumpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.asnumpy(), rm)
    with pytest.raises(ValueError, match="4-D"):
        bn(Tensor(_rand(6, 4)))


def test_instance_norm_is_per_sample_and_channel():
    layer = MetaINNorm(3)
    layer.set_train(False)
    x = _rand(2, 3, 4, 5) * 3 + 2
    expected = (x - x.mean((2, 3), keepdims=True)) / np.sqrt(x.var((2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(layer(Tensor(x)).asnumpy(), expected, rtol=1e-4, atol=1e-5)
