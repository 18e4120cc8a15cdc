"""tools/export_model.py: the DR50 eval graph exported as MINDIR gives, through ``mindspore.load`` + ``nn.GraphCell``,
the model's own features; missing weights and a bad batch size are one-line errors."""
from pathlib import Path

import numpy as np
import pytest
from mindspore import Tensor, load, nn

from fastreid_ms.config import get_cfg
from fastreid_ms.engine import DefaultTrainer
from fastreid_ms.modeling.passes import EvalPass
from fastreid_ms.utils.checkpoint import Checkpointer

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "bagtricks_DR50_mix.yml"
OPTS = ["MODEL.BACKBONE.PRETRAIN", "False", "INPUT.SIZE_TEST", "[64, 32]", "MODEL.HEADS.NUM_CLASSES1", "3",
        "MODEL.HEADS.NUM_CLASSES2", "2", "MODEL.HEADS.NUM_CLASSES3", "2"]


def test_exported_mindir_gives_the_models_features(load_tool, tmp_path):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG))
    cfg.merge_from_list(OPTS)
    model = DefaultTrainer.build_model(cfg)
    Checkpointer(model, str(tmp_path)).save("trained")
    tool = load_tool("export_model")
    out = tmp_path / "exported" / "model.mindir"
    assert tool.main(["--config-file", str(CONFIG), "--output", str(out), "--batch-size", "2", *OPTS,
                      "MODEL.WEIGHTS", str(tmp_path / "trained.ckpt")]) == 0
    assert out.is_file()
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 32)).astype(np.float32)
    exported = nn.GraphCell(load(str(out)))(Tensor(images)).asnumpy()
    expected = EvalPass(model)(images)
    assert exported.shape == (2, 2048)
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=1e-5)


def test_export_errors_are_one_line(load_tool, tmp_path, capsys):
    tool = load_tool("export_model")
    assert tool.main(["--config-file", str(CONFIG), "--output", str(tmp_path / "m"), *OPTS]) == 2
    assert "MODEL.WEIGHTS is empty" in capsys.readouterr().err
    assert tool.main(["--config-file", str(CONFIG), "--output", str(tmp_path / "m"), "--batch-size", "0", *OPTS,
                      "MODEL.WEIGHTS", "w.ckpt"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.get_parser().parse_args(["--output", "m"])
