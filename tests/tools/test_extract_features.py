"""tools/extract_features.py: features of a folder, a glob and a list file of the sample images equal
DefaultPredictor's (flip averaging and L2 normalisation included), with names.txt in the same order; missing
weights and an empty input are one-line errors."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.engine import DefaultPredictor, DefaultTrainer
from fastreid_ms.utils.checkpoint import Checkpointer

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "Market1501" / "bagtricks_R50.yml"
SAMPLES = REPO / "tests" / "data" / "samples"
OPTS = ["MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.PRETRAIN", "False",
        "MODEL.HEADS.NUM_CLASSES", "4", "INPUT.SIZE_TEST", "[64, 32]"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    out = tmp_path_factory.mktemp("weights")
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG))
    cfg.merge_from_list(OPTS)
    Checkpointer(DefaultTrainer.build_model(cfg), str(out)).save("trained")
    return str(out / "trained.ckpt")


def _run(tool, *args):
    return tool.run_tool("extract_features.py", tool.main,
                         tool.get_parser().parse_args(["--config-file", str(CONFIG), *args, *OPTS]))


def _written(out: Path):
    return np.load(out / "features.npy"), (out / "names.txt").read_text().splitlines()


def test_features_of_a_folder_a_glob_and_a_list_equal_the_predictors(load_tool, weights, tmp_path):
    tool = load_tool("extract_features")
    paths = sorted(str(p) for p in SAMPLES.glob("*.jpg"))
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG))
    cfg.merge_from_list(OPTS + ["MODEL.WEIGHTS", weights])
    predictor = DefaultPredictor(cfg)
    expected = predictor(paths)

    assert _run(tool, "--input", str(SAMPLES), "--output", str(tmp_path / "folder"), "MODEL.WEIGHTS", weights) == 0
    features, names = _written(tmp_path / "folder")
    assert names == paths and features.dtype == np.float32 and features.shape == (len(paths), 512)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)

    assert _run(tool, "--input", str(SAMPLES / "*.jpg"), "--output", str(tmp_path / "glob"), "--batch-size", "2",
                "--flip", "--normalize", "MODEL.WEIGHTS", weights) == 0
    batch = np.stack([predictor.prepare(p) for p in paths])
    flipped = (expected + predictor(batch[..., ::-1])) / 2
    flipped /= np.linalg.norm(flipped, axis=1, keepdims=True)
    features, names = _written(tmp_path / "glob")
    assert names == paths
    np.testing.assert_allclose(features, flipped, rtol=1e-5, atol=1e-6)

    (tmp_path / "list" / "imgs").mkdir(parents=True)
    for p in paths[:2]:
        shutil.copy(p, tmp_path / "list" / "imgs")
    listed = [paths[1], str(tmp_path / "list" / "imgs" / Path(paths[0]).name)]
    (tmp_path / "list" / "images.txt").write_text(f"imgs/{Path(paths[1]).name}\n{listed[1]}\n")
    assert _run(tool, "--input", str(tmp_path / "list" / "images.txt"), "--output", str(tmp_path / "listed"),
                "MODEL.WEIGHTS", weights) == 0
    features, names = _written(tmp_path / "listed")
    assert [Path(n).name for n in names] == [Path(p).name for p in listed]
    np.testing.assert_allclose(features, expected[[1, 0]], rtol=1e-5, atol=1e-6)


def test_missing_weights_and_empty_input_are_one_line_errors(load_tool, weights, tmp_path, capsys):
    tool = load_tool("extract_features")
    assert _run(tool, "--input", str(SAMPLES), "--output", str(tmp_path / "o")) == 2
    assert "MODEL.WEIGHTS is empty" in capsys.readouterr().err
    assert _run(tool, "--input", str(tmp_path / "nothing*.jpg"), "--output", str(tmp_path / "o"),
                "MODEL.WEIGHTS", weights) == 2
    assert "no images found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
