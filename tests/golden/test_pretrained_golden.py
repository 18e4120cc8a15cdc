"""Golden test of the IBN-a -> DR50 pretrained-weight surgery (``pretrained_dr50_stage1.npz``): a synthetic IBN-a
checkpoint and the DR50 initial state are regenerated from their seeds, the surgery runs on the DR50 model's own
state (built by fastreid_ms), and every key's loaded flag, source, summaries and the stored full tensors must match."""
import numpy as np
import pytest

from golden import Fixture, recipe_values, weights_spec
from model_utils import dr50_cfg, load_recipe
from fastreid_ms.modeling.backbones import build_backbone
from fastreid_ms.modeling.backbones.dr_pretrained import dr_pretrained_state
from torch_writer import fake_torch, save_state_dict_pth  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def fx():
    return Fixture("pretrained_dr50_stage1")


@pytest.fixture(scope="module")
def surgery(fx):
    ibn = recipe_values([[n, shape, "float32", kind] for n, shape, kind in fx.info["ibn_a_spec"]], int(fx["seed_ibn_a"]))
    model = build_backbone(dr50_cfg())
    load_recipe(model, "backbone", int(fx["seed_dr50_init"]))
    model_state = {name: p.asnumpy() for name, p in model.parameters_and_names()}
    state, sources = dr_pretrained_state(model_state, ibn)
    return ibn, model_state, state, sources


def _close(actual, expected, what):
    """README: |port - ref| <= 1e-6 * max(|ref|, norm_ref) per key."""
    bound = 1e-6 * np.maximum(np.abs(expected), np.abs(expected).max())
    bad = np.flatnonzero(np.abs(actual - expected) > bound)
    assert bad.size == 0, f"{what}: first mismatches at {bad[:5]}: {actual[bad[:5]]} vs {expected[bad[:5]]}"


def test_synthetic_checkpoint_regenerated(fx, surgery):
    ibn = surgery[0]
    names = [n for n, *_ in fx.info["ibn_a_spec"]]
    _close(np.array([ibn[n].astype(np.float64).sum() for n in names]), fx["ibn_sum"], "ibn_sum")
    _close(np.array([np.linalg.norm(ibn[n].astype(np.float64)) for n in names]), fx["ibn_norm"], "ibn_norm")


def test_surgery_matches_reference(fx, surgery):
    _, model_state, state, sources = surgery
    keys = fx.info["dr50_keys"]
    spec_names = [n for n, *_ in weights_spec()["backbone"]["state_dict"]]
    assert keys == spec_names
    float_keys = [k for k in keys if not k.endswith("num_batches_tracked")]
    assert list(model_state) == float_keys, "the DR50 model's state differs from the reference state_dict"

    loaded = fx["loaded"].astype(bool)
    assert int(loaded.sum()) == fx.info["n_loaded"]
    assert [k for k, flag in zip(keys, loaded) if flag] == list(sources), "loaded keys differ"
    assert dict(fx.info["source_of_key"]) == sources, "sources of the loaded keys differ"

    def value(k):
        return state[k].astype(np.float64) if k in state else np.zeros((), np.float64)  # num_batches_tracked: 0
    _close(np.array([value(k).sum() for k in keys]), fx["sum"], "sum")
    _close(np.array([np.linalg.norm(value(k)) for k in keys]), fx["norm"], "norm")
    _close(np.array([np.abs(value(k)).max() for k in keys]), fx["absmax"], "absmax")
    init = [model_state[k].astype(np.float64).sum() if k in model_state else 0.0 for k in keys]
    _close(np.array(init), fx["init_sum"], "init_sum")
    for key in fx.keys("p_"):
        name = key[2:]
        if name.endswith("num_batches_tracked"):
            assert not np.any(fx[key])
            continue
        np.testing.assert_allclose(state[name], fx[key], rtol=1e-6, atol=0, err_msg=name)
    for k in float_keys:
        if k not in sources:
            np.testing.assert_array_equal(state[k], model_state[k], err_msg=f"{k} is not loaded but changed")


def test_builder_loads_the_surgery_result(fx, surgery, tmp_path, fake_torch):
    """build_backbone with PRETRAIN reads PRETRAIN_PATH (here a .pth of the regenerated synthetic IBN-a state) and
    every key the reference loads gets the reference's value."""
    ibn = surgery[0]
    path = tmp_path / "resnet50_ibn_a.pth"
    save_state_dict_pth(path, ibn, fake_torch, wrap_key=None, prefix="")
    cfg = dr50_cfg()
    cfg.MODEL.BACKBONE.PRETRAIN = True
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = str(path)
    model = build_backbone(cfg)
    params = dict(model.parameters_and_names())
    keys = fx.info["dr50_keys"]
    for key, flag, ref_sum, ref_norm in zip(keys, fx["loaded"], fx["sum"], fx["norm"]):
        if flag:
            value = params[key].asnumpy().astype(np.float64)
            _close(np.array([value.sum(), np.linalg.norm(value)]), np.array([ref_sum, ref_norm]), key)
    for key in fx.keys("p_"):
        name = key[2:]
        if fx["loaded"][keys.index(name)]:
            np.testing.assert_allclose(params[name].asnumpy(), fx[key], rtol=1e-6, atol=0, err_msg=name)
