"""Shared helpers of the model-level golden tests: config, recipe weights, gradient summaries and the README's
model-gradient rule."""
import re
from pathlib import Path

import numpy as np

from golden import assert_close, assert_rel_l2, golden_dir, recipe_values, weights_spec
from fastreid_ms.config import get_cfg
from fastreid_ms.utils.state_dict import load_torch_state_dict

REPO_ROOT = Path(__file__).resolve().parents[2]


def model_grad_rel_l2() -> float:
    """The README's suggested ``rel_l2`` bound for model-level gradients ("a check `rel_l2 <= X` ...")."""
    text = (golden_dir() / "README.md").read_text()
    m = re.search(r"Model-level gradients.*?rel_l2 <= ([0-9.eE+-]+)", text, re.S)
    assert m, "the golden README states no rel_l2 rule for model-level gradients"
    return float(m.group(1))


def dr50_cfg(num_classes=None):
    """The reference configuration the fixtures were made with (bagtricks_DR50_mix, PRETRAIN off)."""
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "bagtricks_DR50_mix.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    if num_classes is not None:
        cfg.MODEL.HEADS.NUM_CLASSES1, cfg.MODEL.HEADS.NUM_CLASSES2, cfg.MODEL.HEADS.NUM_CLASSES3 = \
            (int(c) for c in num_classes)
    return cfg


def load_recipe(model, part: str, seed: int):
    """Load the WEIGHTS.md recipe over weights_spec.json's ``part`` ('backbone' / 'baseline') state_dict order."""
    values = recipe_values(weights_spec()[part]["state_dict"], seed)
    missing, unexpected, mismatched = load_torch_state_dict(model, values)
    assert not missing and not unexpected and not mismatched, (missing, unexpected, mismatched)
    return values


def summaries(arrays):
    """float64 sum / L2 norm / absmax of each array."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    return (np.array([a.sum() for a in arrays]), np.array([np.linalg.norm(a) for a in arrays]),
            np.array([np.abs(a).max() for a in arrays]))


def check_summaries(fx, prefix, names, arrays, tol, what):
    """Compare ``<prefix>_{sum,norm,absmax}`` (aligned with ``names``) as whole arrays (README: relative to their
    max; the sums may cancel, so they are compared the same way)."""
    got = dict(zip(("sum", "norm", "absmax"), summaries(arrays)))
    for kind in ("norm", "absmax", "sum"):
        assert_close(got[kind], fx[f"{prefix}_{kind}"], tol, f"{what}: {prefix}_{kind}")


def check_model_grad(actual, expected, fx, what):
    """Model-level gradient: the README's rel_l2 rule, plus its max-abs rule with the fixture's grad tolerance."""
    assert_rel_l2(actual, expected, model_grad_rel_l2(), what)
    assert_close(actual, expected, fx.tol("grad"), what)
