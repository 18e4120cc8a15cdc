"""Config system: defaults, _BASE_ inheritance, command-line overrides and their errors."""
import pytest

from fastreid_ms.config import CfgNode, ConfigError, get_cfg


def test_defaults_hold_fastreid_and_acl_keys():
    cfg = get_cfg()
    assert cfg.MODEL.META_ARCHITECTURE == "Baseline"
    assert cfg.MODEL.HEADS.NUM_CLASSES == 0
    assert (cfg.MODEL.HEADS.NUM_CLASSES1, cfg.MODEL.HEADS.NUM_CLASSES2, cfg.MODEL.HEADS.NUM_CLASSES3) == (0, 0, 0)
    assert cfg.MODEL.PIXEL_MEAN == pytest.approx([123.675, 116.28, 103.53])
    assert cfg.SOLVER.OPT == "Adam" and cfg.SOLVER.STEPS == [30, 55]
    assert cfg.TEST.METRIC == "cosine" and cfg.TEST.RERANK.K1 == 20
    assert cfg.SEED == -1 and cfg.MODEL.DEVICE == "cpu"


def test_datasets_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path))
    assert get_cfg().DATASETS.ROOT == str(tmp_path)
    monkeypatch.delenv("FASTREID_DATASETS")
    assert get_cfg().DATASETS.ROOT == "datasets"


def test_get_cfg_returns_independent_copies():
    a, b = get_cfg(), get_cfg()
    a.SOLVER.BASE_LR = 1.0
    assert b.SOLVER.BASE_LR == 3e-4


def test_base_chain_is_followed_relative_to_child(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "Base.yml").write_text("SOLVER:\n  BASE_LR: 0.1\n  MAX_EPOCH: 7\nMODEL:\n  BACKBONE:\n    DEPTH: 18x\n")
    (tmp_path / "sub" / "mid.yml").write_text("_BASE_: ../Base.yml\nSOLVER:\n  MAX_EPOCH: 9\n")
    (tmp_path / "sub" / "child.yml").write_text("_BASE_: mid.yml\nSOLVER:\n  BASE_LR: 0.5\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "sub" / "child.yml"))
    assert cfg.SOLVER.BASE_LR == 0.5
    assert cfg.SOLVER.MAX_EPOCH == 9
    assert cfg.MODEL.BACKBONE.DEPTH == "18x"


def test_unknown_key_in_file_names_key_and_suggestions(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("SOLVER:\n  BASE_RL: 0.1\n")
    with pytest.raises(ConfigError) as e:
        get_cfg().merge_from_file(str(path))
    msg = str(e.value)
    assert "SOLVER.BASE_RL" in msg and "SOLVER.BASE_LR" in msg and "bad.yml" in msg


def test_unknown_key_on_command_line_names_closest_keys():
    with pytest.raises(ConfigError) as e:
        get_cfg().merge_from_list(["MODEL.BACKBONE.DEPHT", "18x"])
    assert "MODEL.BACKBONE.DEPHT" in str(e.value) and "MODEL.BACKBONE.DEPTH" in str(e.value)


def test_bad_value_type_names_key():
    with pytest.raises(ConfigError) as e:
        get_cfg().merge_from_list(["SOLVER.MAX_EPOCH", "many"])
    assert "SOLVER.MAX_EPOCH" in str(e.value)


def test_command_line_values_are_parsed_like_fastreid():
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.NAMES", '("cuhkSYSU","Market1501")', "SOLVER.BASE_LR", "0.04"])
    assert cfg.DATASETS.NAMES == ("cuhkSYSU", "Market1501")
    assert cfg.SOLVER.BASE_LR == 0.04


def test_missing_file_and_odd_overrides_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        get_cfg().merge_from_file(str(tmp_path / "nope.yml"))
    with pytest.raises(ConfigError, match="KEY VALUE"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR"])
    with pytest.raises(ConfigError, match="_BASE_"):
        get_cfg().merge_from_list(["_BASE_", "x.yml"])


def test_configurable_builds_from_cfg_or_kwargs():
    from fastreid_ms.config import configurable

    class Thing:
        @configurable
        def __init__(self, *, lr, depth="50x"):
            self.lr, self.depth = lr, depth

        @classmethod
        def from_config(cls, cfg):
            return {"lr": cfg.SOLVER.BASE_LR, "depth": cfg.MODEL.BACKBONE.DEPTH}

    cfg = get_cfg()
    assert Thing(cfg).lr == cfg.SOLVER.BASE_LR
    assert Thing(lr=0.5).depth == "50x"
    assert isinstance(cfg, CfgNode)
