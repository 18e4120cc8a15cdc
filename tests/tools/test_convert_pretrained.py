"""tools/convert_pretrained.py: an IBN-a ImageNet .pth converted once to a .ckpt gives the DR50 backbone exactly the
weights that loading the .pth (with the adaptor surgery) gives; a corrupt download is refused with one line."""
import hashlib
from pathlib import Path

import numpy as np

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling.backbones import build_backbone
from fastreid_ms.utils.env import seed_all_rng
from torch_writer import fake_torch, save_state_dict_pth  # noqa: F401 (fixture)

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "bagtricks_DR50_mix.yml")


def _ibn_a_pth(tmp_path, torch_mod) -> str:
    """A ResNet50-IBN-a state dict in PyTorch's names and .pth format, named with its SHA-256 prefix."""
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
    cfg.MODEL.BACKBONE.DEPTH = "50x"
    cfg.MODEL.BACKBONE.WITH_IBN = True
    cfg.MODEL.BACKBONE.PRETRAIN = False
    seed_all_rng(3)
    state = {name: p.asnumpy() for name, p in build_backbone(cfg).parameters_and_names()}
    tmp = tmp_path / "ibn.pth"
    save_state_dict_pth(tmp, state, torch_mod, wrap_key=None, prefix="")
    path = tmp_path / f"resnet50_ibn_a-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(path)
    return str(path)


def _dr50_weights(pretrain_path: str):
    cfg = get_cfg()
    cfg.merge_from_file(CONFIG)
    cfg.MODEL.BACKBONE.PRETRAIN = bool(pretrain_path)
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = pretrain_path
    seed_all_rng(11)
    return {name: p.asnumpy() for name, p in build_backbone(cfg).parameters_and_names()}


def test_converted_ckpt_loads_the_same_weights_as_the_pth(tmp_path, fake_torch, load_tool):
    tool = load_tool("convert_pretrained")
    pth = _ibn_a_pth(tmp_path, fake_torch)
    ckpt = str(tmp_path / "resnet50_ibn_a_DR50.ckpt")
    assert tool.run_tool("convert_pretrained.py", tool.main, ["--config-file", CONFIG, "--input", pth,
                                                              "--output", ckpt]) == 0
    initial, from_pth, from_ckpt = _dr50_weights(""), _dr50_weights(pth), _dr50_weights(ckpt)
    assert list(from_pth) == list(from_ckpt) == list(initial)
    for name in from_pth:
        np.testing.assert_array_equal(from_ckpt[name], from_pth[name], err_msg=name)
    changed = [name for name in initial if not np.array_equal(initial[name], from_pth[name])]
    assert "conv1.weight" in changed and "adaptor1_sub.conv3.weight" in changed and len(changed) > 50


def test_wrong_hash_is_one_line_and_writes_nothing(tmp_path, fake_torch, load_tool, capsys):
    tool = load_tool("convert_pretrained")
    pth = Path(_ibn_a_pth(tmp_path, fake_torch))
    digest = pth.stem.split("-")[1]
    wrong = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    corrupt = pth.with_name(f"resnet50_ibn_a-{wrong}.pth")
    pth.rename(corrupt)
    out = tmp_path / "out.ckpt"
    code = tool.run_tool("convert_pretrained.py", tool.main, ["--config-file", CONFIG, "--input", str(corrupt),
                                                              "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert err == [f"convert_pretrained.py: error: {corrupt}: SHA-256 {digest}... does not match the {wrong} in "
                   f"its name (the download is incomplete or corrupt): download the file again"]
