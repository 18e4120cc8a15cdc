"""Access to the PyTorch-reference golden fixtures: ``tests/golden/fixtures`` (its README.md says what each file holds
and the tolerances), or the folder named by ``FASTREID_MS_GOLDEN_DIR`` to check another fixture set.

Everything a test needs (arrays, settings from ``MANIFEST.json`` info, tolerances from the README's table) is read
from the fixture folder, so that another fixture set of the same format checks fastreid_ms as well. A missing folder
or file fails the test; it never skips.
"""
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence

import numpy as np
import pytest

_DEFAULT_DIR = Path(__file__).resolve().parent / "fixtures"


def golden_dir() -> Path:
    path = Path(os.environ.get("FASTREID_MS_GOLDEN_DIR", str(_DEFAULT_DIR)))
    if not path.is_dir():
        pytest.fail(f"golden fixture folder {path} does not exist: set FASTREID_MS_GOLDEN_DIR to the folder holding "
                    f"the reference fixtures (default tests/golden/fixtures in the repository)", pytrace=False)
    return path


@lru_cache(maxsize=None)
def manifest() -> Dict[str, Any]:
    path = golden_dir() / "MANIFEST.json"
    if not path.is_file():
        pytest.fail(f"golden manifest {path} is missing", pytrace=False)
    with open(path) as f:
        return json.load(f)


class Fixture:
    """One ``<name>.npz`` fixture: ``fx["key"]`` is the array, ``fx.info`` the MANIFEST info, ``fx.kinds`` the key
    kinds (input, param, out, grad, post, loss, summary, ...)."""

    def __init__(self, name: str):
        self.name = name
        path = golden_dir() / f"{name}.npz"
        if not path.is_file():
            pytest.fail(f"golden fixture {path} is missing", pytrace=False)
        with np.load(path, allow_pickle=False) as data:
            self.arrays = {k: data[k] for k in data.files}
        entry = manifest().get(name)
        if entry is None:
            pytest.fail(f"golden fixture {name!r} has no entry in MANIFEST.json", pytrace=False)
        self.info = entry.get("info", {})
        self.kinds = {k: v["kind"] for k, v in entry.get("keys", {}).items()}
        self.desc = entry.get("desc", "")

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            pytest.fail(f"golden fixture {self.name!r} has no key {key!r}", pytrace=False)
        return self.arrays[key]

    def __contains__(self, key: str) -> bool:
        return key in self.arrays

    def keys(self, prefix: str = "", kind: str = None) -> List[str]:
        return [k for k in self.arrays if k.startswith(prefix) and (kind is None or self.kinds.get(k) == kind)]

    def tol(self, group: str) -> float:
        return tolerance(self.name, group)


@lru_cache(maxsize=None)
def _tolerance_table() -> Dict[tuple, float]:
    path = golden_dir() / "README.md"
    if not path.is_file():
        pytest.fail(f"golden README {path} (which states the tolerances) is missing", pytrace=False)
    table = {}
    row = re.compile(r"^\|\s*([a-z0-9_]+)\s*\|\s*([a-z/]+)\s*\|\s*[-+.e0-9]+\s*\|\s*[-+.e0-9]+\s*\|\s*([-+.e0-9]+)\s*\|")
    for line in path.read_text().splitlines():
        m = row.match(line)
        if m:
            table[(m.group(1), m.group(2))] = float(m.group(3))
    return table


def tolerance(name: str, group: str) -> float:
    """The README's suggested tolerance for fixture ``name`` and key group (grad, out/post, loss, summary)."""
    table = _tolerance_table()
    if (name, group) not in table:
        pytest.fail(f"the golden README states no tolerance for {name} / {group}", pytrace=False)
    return table[(name, group)]


def assert_close(actual, expected, tol: float, what: str) -> None:
    """``max|actual - expected| <= tol * max|expected|`` (the README's rule; absolute ``tol`` when expected is 0)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != reference {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    bound = tol * (scale if scale > 0 else 1.0)
    assert err <= bound, f"{what}: max abs err {err:.3e} > {tol:g} x max|ref| ({scale:.3e})"


def assert_rel_l2(actual, expected, tol: float, what: str) -> None:
    """``||actual - expected|| <= tol * ||expected||`` (the README's rule for model-level gradients)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != reference {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values"
    ref = float(np.linalg.norm(expected))
    err = float(np.linalg.norm(actual - expected))
    assert err <= tol * (ref if ref > 0 else 1.0), f"{what}: rel L2 err {err / max(ref, 1e-30):.3e} > {tol:g}"


def recipe_values(spec: Iterable[Sequence], seed: int) -> Dict[str, np.ndarray]:
    """The WEIGHTS.md recipe: ``spec`` is ``[name, shape, dtype, kind]`` in state_dict order."""
    rng = np.random.default_rng(int(seed))
    out = {}
    for name, shape, dtype, kind in spec:
        shape = tuple(shape)
        if kind == "int_zero" or not str(dtype).startswith("float"):
            out[name] = np.zeros(shape, dtype=np.int64)
            continue
        z = rng.standard_normal(size=shape)
        if kind == "fan_in":
            v = z * np.sqrt(2.0 / np.prod(shape[1:]))
        elif kind == "running_var":
            v = 1 + 0.1 * np.abs(z)
        elif kind in ("running_mean", "gate", "bias"):
            v = 0.1 * z
        elif kind == "res_norm_weight":
            v = 0.1 * (1 + 0.1 * z)
        elif kind == "norm_weight":
            v = 1 + 0.1 * z
        else:
            raise ValueError(f"unknown recipe kind {kind!r} for {name}")
        out[name] = v.astype(np.float32)
    return out


def weights_spec() -> Dict[str, Any]:
    path = golden_dir() / "weights_spec.json"
    if not path.is_file():
        pytest.fail(f"golden weights spec {path} is missing", pytrace=False)
    with open(path) as f:
        return json.load(f)
