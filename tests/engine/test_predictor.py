"""DefaultPredictor in its documented forms: file paths, PIL images and (H, W, 3) arrays, one image or a list, give
the features of the model's eval pass on the test transform; NCHW batches pass through; bad inputs are clear
errors."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreid_ms.config import get_cfg
from fastreid_ms.data.data_utils import ImageReadError
from fastreid_ms.data.transforms import build_transforms
from fastreid_ms.engine import DefaultPredictor, DefaultTrainer
from fastreid_ms.modeling.passes import EvalPass
from fastreid_ms.utils.checkpoint import Checkpointer

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "data" / "samples"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    out = tmp_path_factory.mktemp("predictor")
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "Market1501" / "bagtricks_R50.yml"))
    cfg.merge_from_list(["MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.PRETRAIN",
                         "False", "MODEL.HEADS.NUM_CLASSES", "4", "INPUT.SIZE_TEST", "[64, 32]"])
    model = DefaultTrainer.build_model(cfg)
    Checkpointer(model, str(out)).save("trained")
    cfg.merge_from_list(["MODEL.WEIGHTS", str(out / "trained.ckpt")])
    return DefaultPredictor(cfg), cfg


def test_paths_pil_images_and_arrays_give_the_eval_pass_features(predictor):
    predictor, cfg = predictor
    paths = sorted(SAMPLES.glob("*.jpg"))[:3]
    pil = [Image.open(p).convert("RGB") for p in paths]
    transform = build_transforms(cfg, is_train=False)
    batch = np.stack([transform(image, np.random.default_rng(0)) for image in pil])
    expected = EvalPass(predictor.model)(batch)
    assert expected.shape == (3, 512)
    for form in ([str(p) for p in paths], paths, pil, [np.asarray(image) for image in pil]):
        np.testing.assert_allclose(predictor(form), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictor(str(paths[0])), expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictor(batch), expected, rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_clear_errors(predictor):
    predictor, _ = predictor
    with pytest.raises(ValueError, match=r"an image array must be \(H, W, 3\) RGB, got shape \(8, 8\)"):
        predictor(np.zeros((8, 8), np.uint8))
    with pytest.raises(TypeError, match="an image is a file path, a PIL image or an \\(H, W, 3\\) array, got int"):
        predictor([3])
    with pytest.raises(ImageReadError, match="image file not found: no/such/image.jpg"):
        predictor("no/such/image.jpg")


@pytest.mark.parametrize("images,error,message", [
    (np.zeros((64, 32), np.uint8), ValueError, r"an image array must be \(H, W, 3\) RGB, got shape \(64, 32\)"),
    (7, TypeError, r"an image is a file path, a PIL image or an \(H, W, 3\) array, got int"),
    (np.zeros((2, 1, 64, 32), np.float32), ValueError, r"batch\['images'\] must be \(N, 3, H, W\)"),
    (np.zeros((2, 3, 64, 32), np.complex64), ValueError, "must hold real pixel values \\(0..255\\), got dtype complex64"),
    ("no/such/image.jpg", OSError, "no/such/image.jpg"),
])
def test_inputs_of_the_wrong_shape_or_type_are_named(predictor, images, error, message):
    predictor, _ = predictor
    with pytest.raises(error, match=message):
        predictor(images)
