"""oneDNN's instruction-set cap for MindSpore's CPU convolutions.

MindSpore 2.10 hands oneDNN plain NCHW tensors. On CPUs with AVX-512, oneDNN then runs every convolution larger
than 1x1 (and the strided and grouped 1x1 ones) with its naive reference kernel (``jit_uni_ncsp:conv+ref``),
100-300x slower than PyTorch; capped at AVX2 (environment variable ``ONEDNN_MAX_CPU_ISA=AVX2``) it picks its
``gemm:jit`` kernels (a 3x3 conv on 16x64x64x32: ~3 s -> 0.03 s; the DR50 training step: minutes -> seconds). The
cost of the cap is a slower matmul (~200 -> ~145 GFLOP/s), far smaller. The variable is read when the first
operator runs, so :func:`cap_onednn_isa` runs when ``fastreid_ms`` is imported; a value the user set wins.
The decision and its reason are logged by the engine's setup (:func:`onednn_isa_decision`).

``python benchmarks/bench_conv.py`` measures the per-layer timings with and without the cap on the current machine.
"""
import os
import platform
from typing import Tuple

__all__ = ["cap_onednn_isa", "onednn_isa_decision", "cpu_has_avx512"]

_VARIABLE = "ONEDNN_MAX_CPU_ISA"
_CAP = "AVX2"


def cpu_has_avx512() -> bool:
    """Whether the CPU advertises AVX-512 (Linux ``/proc/cpuinfo`` flags; False where they cannot be read)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "avx512f" in line.split()
    except OSError:
        return False
    return False


def cap_onednn_isa() -> None:
    """Set ``ONEDNN_MAX_CPU_ISA=AVX2`` on AVX-512 CPUs unless the variable is already set."""
    if _VARIABLE not in os.environ and cpu_has_avx512():
        os.environ[_VARIABLE] = _CAP


def onednn_isa_decision() -> Tuple[str, str]:
    """``(value of ONEDNN_MAX_CPU_ISA or '', reason)`` for the log."""
    value = os.environ.get(_VARIABLE, "")
    avx512 = cpu_has_avx512()
    if not value:
        if avx512:
            return value, (f"{_VARIABLE} not set on an AVX-512 CPU (MindSpore ran operators before fastreid_ms was "
                           f"imported?): convolutions run oneDNN's slow reference kernel")
        return value, f"{_VARIABLE} not set: no AVX-512 on this CPU, oneDNN's own kernel choice is fast"
    if avx512 and value.upper() == _CAP:
        return value, (f"{_VARIABLE}={value}: this CPU has AVX-512, where oneDNN runs MindSpore's NCHW convolutions "
                       f"with its reference kernel unless capped (100x slower); set the variable yourself to "
                       f"override")
    return value, f"{_VARIABLE}={value} (set by the user)"
