"""GeneralizedMeanPooling (the ACL-DGReID head's pool) against the PyTorch reference fixture ``op_gem``."""
import mindspore
import numpy as np
from golden import Fixture, assert_close
from mindspore import Tensor

from fastreid_ms.layers import GeneralizedMeanPooling


def _gem_and_input_grad(fx):
    pool = GeneralizedMeanPooling(norm=fx.info["p"], eps=fx.info["eps"])
    x = Tensor(fx["in_x"])
    cot = Tensor(fx["cot_y"])

    def weighted_output(inp):
        y = pool(inp)
        return (y * cot).sum(), y

    (_, y), grad_x = mindspore.value_and_grad(weighted_output, grad_position=0, has_aux=True)(x)
    return y.asnumpy(), grad_x.asnumpy()


def test_gem_forward_matches_reference():
    fx = Fixture("op_gem")
    y, _ = _gem_and_input_grad(fx)
    assert_close(y, fx["out_y"], fx.tol("out/post"), "op_gem out_y")


def test_gem_input_gradient_matches_reference():
    fx = Fixture("op_gem")
    _, grad_x = _gem_and_input_grad(fx)
    assert_close(grad_x, fx["grad_in_x"], fx.tol("grad"), "op_gem grad_in_x")
    # the clamp at eps must block the gradient of non-positive inputs, as in the reference
    assert np.all(grad_x[fx["in_x"] <= 0] == 0), "GeM passed gradient through clamped (non-positive) inputs"
