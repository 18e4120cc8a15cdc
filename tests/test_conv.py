"""fastreid_ms.layers.conv: both CPU implementations equal MindSpore's native conv (forward and gradients), the
mode switch, the auto probe and the device dispatch."""
import time
import zlib

import mindspore
import numpy as np
import pytest
from mindspore import Parameter, Tensor, ops

from fastreid_ms.layers import conv

# (name, N, C_in, H, W, C_out, kernel (kh, kw), stride, padding, dilation, groups, bias)
CASES = [
    ("3x3_pad1", 2, 4, 7, 6, 6, (3, 3), 1, 1, 1, 1, False),
    ("3x3_stride2", 2, 5, 9, 8, 4, (3, 3), 2, 1, 1, 1, False),
    ("3x3_stride2_odd_nopad", 2, 3, 9, 7, 4, (3, 3), 2, 0, 1, 1, False),
    ("3x3_groups4", 2, 8, 7, 5, 8, (3, 3), 1, 1, 1, 4, False),
    ("3x3_groups4_stride2", 2, 8, 9, 7, 12, (3, 3), 2, 1, 1, 4, False),
    ("3x3_dilation2", 2, 4, 9, 8, 6, (3, 3), 1, 2, 2, 1, False),
    ("7x7_stride2_stem", 2, 3, 13, 10, 5, (7, 7), 2, 3, 1, 1, False),
    ("1x1", 2, 8, 6, 5, 12, (1, 1), 1, 0, 1, 1, False),
    ("1x1_stride2_odd", 2, 8, 7, 5, 6, (1, 1), 2, 0, 1, 1, False),
    ("1x1_groups4", 2, 16, 5, 4, 8, (1, 1), 1, 0, 1, 4, False),
    ("1x1_pad1", 2, 4, 5, 4, 3, (1, 1), 1, 1, 1, 1, False),
    ("3x3_bias", 2, 4, 6, 6, 5, (3, 3), 1, 1, 1, 1, True),
    ("1x1_bias", 2, 4, 6, 6, 5, (1, 1), 1, 0, 1, 1, True),
    ("rect_kernel_pad_pair", 2, 6, 6, 7, 4, (1, 3), 1, (0, 1), 1, 2, False),
]
TOL = 1e-5   # max |impl - native| <= TOL * max |native| (float32 rounding of different summation orders)


@pytest.fixture
def restore_mode():
    saved = conv.get_cpu_conv_impl()
    yield
    conv.set_cpu_conv_impl(saved)


def _case_tensors(case):
    _, n, cin, h, w, cout, kernel, stride, padding, dilation, groups, has_bias = case
    rng = np.random.default_rng(zlib.crc32(case[0].encode()))
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    weight = (rng.standard_normal((cout, cin // groups) + kernel) * 0.3).astype(np.float32)
    fast_grad = rng.standard_normal(weight.shape).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32) if has_bias else None
    return x, weight, fast_grad, bias


def _run(conv_fn, case, fast_weight):
    """Output, d/dx, d/dweight (and d/dbias) of sum(conv(x) * cot) with the weight a Parameter or, for the
    meta-learning path, the computed tensor ``weight - 0.1 * stop_gradient(fast_grad)``."""
    _, _, _, _, _, _, _, stride, padding, dilation, groups, _ = case
    x_np, w_np, g_np, b_np = _case_tensors(case)
    weight = Parameter(Tensor(w_np), name="weight")
    params = [weight]
    bias = None
    if b_np is not None:
        bias = Parameter(Tensor(b_np), name="bias")
        params.append(bias)
    fast_grad = Tensor(g_np)

    def forward(x):
        w = weight - 0.1 * ops.stop_gradient(fast_grad) if fast_weight else weight
        return conv_fn(x, w, bias, stride, padding, dilation, groups)

    y = forward(Tensor(x_np))
    cot = Tensor(np.random.default_rng(7).standard_normal(y.shape).astype(np.float32))
    grad_x, grad_params = mindspore.grad(lambda x: (forward(x) * cot).sum(), grad_position=0, weights=params)(
        Tensor(x_np))
    return [y.asnumpy(), grad_x.asnumpy()] + [g.asnumpy() for g in grad_params]


def _native_reference(x, weight, bias, stride, padding, dilation, groups):
    y = ops.conv2d(x, weight, None, stride, "pad", padding, dilation, groups)
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


def _assert_matches(actual, expected, what):
    for name, a, e in zip(("output", "grad_x", "grad_weight", "grad_bias"), actual, expected):
        assert a.shape == e.shape, f"{what} {name}: shape {a.shape} != {e.shape}"
        err = float(np.max(np.abs(a - e)))
        assert err <= TOL * float(np.max(np.abs(e))), f"{what} {name}: max abs err {err:.3e}"


@pytest.mark.parametrize("impl", ["native", "matmul"])
@pytest.mark.parametrize("fast_weight", [False, True], ids=["param_weight", "computed_weight"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_conv2d_matches_native_op(case, fast_weight, impl, restore_mode):
    conv.set_cpu_conv_impl(impl)
    expected = _run(_native_reference, case, fast_weight)
    actual = _run(conv.conv2d, case, fast_weight)
    _assert_matches(actual, expected, f"{impl} {case[0]}")


def test_native_op_reference_matches_numpy_convolution(restore_mode):
    """Anchor the reference itself: a direct float64 sum over kernel taps for a strided, dilated, grouped case."""
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 8))
    w = np.random.default_rng(1).standard_normal((6, 2, 3, 3))
    stride, pad, dil, groups = 2, 2, 2, 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (9 + 2 * pad - dil * 2 - 1) // stride + 1
    ow = (8 + 2 * pad - dil * 2 - 1) // stride + 1
    expected = np.zeros((2, 6, oh, ow))
    for o in range(6):
        g = o // 3
        for i in range(3):
            for j in range(3):
                rows = slice(i * dil, i * dil + stride * oh, stride)
                cols = slice(j * dil, j * dil + stride * ow, stride)
                patch = xp[:, 2 * g:2 * g + 2, rows, cols]
                expected[:, o] += np.einsum("c,nchw->nhw", w[o, :, i, j], patch)
    for impl in ("native", "matmul"):
        conv.set_cpu_conv_impl(impl)
        y = conv.conv2d(Tensor(x.astype(np.float32)), Tensor(w.astype(np.float32)), None, stride, pad, dil, groups)
        np.testing.assert_allclose(y.asnumpy(), expected, rtol=1e-4, atol=1e-4, err_msg=impl)


def test_bad_mode_is_rejected_with_its_value(restore_mode):
    with pytest.raises(ValueError, match="'fast'"):
        conv.set_cpu_conv_impl("fast")
    with pytest.raises(ValueError, match="MODEL.CPU_CONV"):
        conv.conv_impl_for("CPU", "gemm", "spatial")


def test_bad_conv_arguments_are_rejected():
    x = Tensor(np.zeros((1, 6, 5, 5), np.float32))
    with pytest.raises(ValueError, match="groups=4"):
        conv.conv2d(x, Tensor(np.zeros((4, 2, 3, 3), np.float32)), groups=4)
    with pytest.raises(ValueError, match="padding"):
        conv.conv2d(x, Tensor(np.zeros((4, 6, 3, 3), np.float32)), padding="same")


def _probe_must_not_run():
    raise AssertionError("the auto probe ran although the decision did not need it")


@pytest.mark.parametrize("target", ["GPU", "Ascend"])
@pytest.mark.parametrize("mode", ["auto", "matmul", "native"])
@pytest.mark.parametrize("kind", ["pointwise", "spatial"])
def test_non_cpu_targets_always_use_native_kernel(target, mode, kind):
    assert conv.conv_impl_for(target, mode, kind, probe=_probe_must_not_run) == "native"


def test_cpu_dispatch_follows_mode_and_probe():
    assert conv.conv_impl_for("CPU", "matmul", "spatial", probe=_probe_must_not_run) == "matmul"
    assert conv.conv_impl_for("CPU", "native", "pointwise", probe=_probe_must_not_run) == "native"
    decision = {"spatial": "matmul", "pointwise": "native"}
    assert conv.conv_impl_for("CPU", "auto", "spatial", probe=lambda: decision) == "matmul"
    assert conv.conv_impl_for("CPU", "auto", "pointwise", probe=lambda: decision) == "native"


def test_only_plain_1x1_convolutions_are_pointwise():
    """Strided or grouped 1x1 convolutions go with the larger kernels: oneDNN on AVX-512 runs them with its slow
    reference kernel too (benchmarks/bench_conv.py: 1x1_256_512_s2, 1x1_1024_64_g4)."""
    assert conv.kernel_kind_of((256, 64, 1, 1), (1, 1), 1) == "pointwise"
    assert conv.kernel_kind_of((512, 256, 1, 1), (2, 2), 1) == "spatial"
    assert conv.kernel_kind_of((64, 256, 1, 1), (1, 1), 4) == "spatial"
    assert conv.kernel_kind_of((64, 64, 3, 3), (1, 1), 1) == "spatial"


def test_conv2d_routes_strided_and_grouped_1x1_by_the_spatial_decision(monkeypatch, restore_mode):
    conv.set_cpu_conv_impl("auto")
    monkeypatch.setattr(conv, "probe_cpu_conv_impl", lambda refresh=False: {"spatial": "matmul", "pointwise": "native"})
    ran = []
    real = conv.matmul_conv2d
    monkeypatch.setattr(conv, "matmul_conv2d", lambda *a, **k: ran.append(a[1].shape) or real(*a, **k))
    x = Tensor(np.random.RandomState(0).randn(1, 8, 6, 4).astype(np.float32))
    conv.conv2d(x, Tensor(np.ones((4, 8, 1, 1), np.float32)))
    assert ran == []
    conv.conv2d(x, Tensor(np.ones((4, 8, 1, 1), np.float32)), stride=2)
    conv.conv2d(x, Tensor(np.ones((4, 2, 1, 1), np.float32)), groups=4)
    assert ran == [(4, 8, 1, 1), (4, 2, 1, 1)]


def test_conv2d_uses_native_kernel_when_device_is_not_cpu(monkeypatch, restore_mode):
    conv.set_cpu_conv_impl("matmul")
    monkeypatch.setattr(conv, "_device_target", lambda: "GPU")

    def fail(*args, **kwargs):
        raise AssertionError("the matmul convolution ran for a GPU device target")

    monkeypatch.setattr(conv, "matmul_conv2d", fail)
    y = conv.conv2d(Tensor(np.ones((1, 2, 4, 4), np.float32)), Tensor(np.ones((3, 2, 3, 3), np.float32)), padding=1)
    assert y.shape == (1, 3, 4, 4) and float(y.asnumpy()[0, 0, 1, 1]) == 18.0


def test_auto_probe_returns_a_valid_cached_choice():
    start = time.perf_counter()
    decision = conv.probe_cpu_conv_impl(refresh=True)
    elapsed = time.perf_counter() - start
    assert set(decision) == set(conv.KERNEL_KINDS)
    assert set(decision.values()) <= set(conv.IMPLEMENTATIONS)
    assert elapsed < 10.0, f"the auto probe took {elapsed:.1f} s (designed for well under a second on an idle CPU)"
    timings = conv.probe_timings()
    assert set(timings) == set(conv.KERNEL_KINDS)
    for kind, choice in decision.items():   # the choice is the faster implementation of the measurement
        other = "native" if choice == "matmul" else "matmul"
        assert timings[kind][choice] <= timings[kind][other], (kind, timings)
    start = time.perf_counter()
    assert conv.probe_cpu_conv_impl() == decision
    assert time.perf_counter() - start < 0.01, "the probe result is not cached"


def test_auto_mode_probe_first_triggered_inside_a_gradient(restore_mode):
    """A model whose first convolution runs inside value_and_grad (no explicit set_cpu_conv_impl) still gets the
    right gradients: the lazily-run probe must not disturb the traced computation."""
    conv.set_cpu_conv_impl("native")
    conv._POLICY.mode, conv._POLICY.probed = "auto", None
    case = CASES[1]
    actual = _run(conv.conv2d, case, fast_weight=True)
    assert conv._POLICY.probed is not None
    _assert_matches(actual, _run(_native_reference, case, fast_weight=True), "auto (lazy probe)")
