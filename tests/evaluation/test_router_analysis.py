"""Router analysis: the mean routing weights of the four HyperRouters per source domain and target set."""
from pathlib import Path

import numpy as np
import pytest
from mindspore import Tensor
from PIL import Image

from fastreid_ms.config import get_cfg
from fastreid_ms.data.build import build_dataset, build_inference_loader
from fastreid_ms.data.synthetic import make_synthetic_reid
from fastreid_ms.evaluation import inference_context
from fastreid_ms.evaluation.router_analysis import analyze_routers, router_table, routing_weights, save_router_plot
from fastreid_ms.modeling import build_model
from fastreid_ms.utils.env import seed_all_rng

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("cuhkSYSU", "Market1501", "MSMT17")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("router_data")
    tiny = dict(num_train_ids=3, num_test_ids=3, min_images=2, max_images=3, num_distractors=1, num_junk=1, num_val=1)
    make_synthetic_reid(str(root), SOURCES + ("CUHK03",), seed=3, image_size=(32, 16),
                        sizes={name: tiny for name in SOURCES + ("CUHK03",)})
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "bagtricks_DR50_mix.yml"))
    cfg.merge_from_list(["DATASETS.ROOT", str(root), "MODEL.BACKBONE.PRETRAIN", "False", "INPUT.SIZE_TEST", "[32, 16]",
                         "TEST.IMS_PER_BATCH", "4", "DATALOADER.NUM_WORKERS", "0", "MODEL.HEADS.NUM_CLASSES1", "3",
                         "MODEL.HEADS.NUM_CLASSES2", "3", "MODEL.HEADS.NUM_CLASSES3", "3", "SEED", "1"])
    seed_all_rng(1)
    return cfg, build_model(cfg)


def test_means_are_per_domain_averages_of_softmax_weights(setup):
    cfg, model = setup
    means = analyze_routers(cfg, model, max_images=5)
    assert list(means) == ["cuhkSYSU (source)", "Market1501 (source)", "MSMT17 (source)", "CUHK03 (target)"]
    for label, values in means.items():
        assert values.shape == (4, 4), label
        np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-5, err_msg=label)
    assert not np.allclose(means["cuhkSYSU (source)"], means["CUHK03 (target)"])
    # per-image weights are the backbone's routing outputs; a domain's mean averages those of its sampled images
    items = [(path, 0, 0) for path, _, _ in build_dataset("Market1501", cfg.DATASETS.ROOT).train]
    assert len(items) > 5
    per_image = routing_weights(model, build_inference_loader(cfg, items))
    assert per_image.shape == (len(items), 4, 4)
    images = Tensor(next(iter(build_inference_loader(cfg, items[:4])))["images"])  # the loader's first batch
    with inference_context(model):
        direct = model.backbone(model.preprocess_image(images), False)[1].asnumpy()
    np.testing.assert_allclose(per_image[:4].reshape(4, -1), direct, rtol=1e-5, atol=1e-6)
    keep = np.sort(np.random.default_rng(cfg.SEED + 1).choice(len(items), 5, replace=False))
    sampled = routing_weights(model, build_inference_loader(cfg, [items[i] for i in keep]))
    np.testing.assert_allclose(means["Market1501 (source)"], sampled.mean(axis=0), rtol=1e-5, atol=1e-7)


def test_table_and_png(setup, tmp_path):
    means = {"A (source)": np.full((4, 4), 0.25), "B (target)": np.eye(4)}
    table = router_table(means).splitlines()
    assert table[0].split("|")[1].strip() == "domain" and len(table[0].split("|")) == 1 + 1 + 16 + 1
    assert table[2].startswith("| A (source)") and "0.250" in table[2] and "1.000" in table[3]
    path = save_router_plot(means, str(tmp_path / "routers.png"))
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > 4 * 4 * 40 and image.size[1] > 2 * 26


def test_models_without_routers_are_refused(setup):
    cfg, _ = setup
    plain = get_cfg()
    plain.merge_from_list(["MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.PRETRAIN",
                           "False", "MODEL.HEADS.NUM_CLASSES", "3"])
    with pytest.raises(ValueError, match="router analysis needs the dynamic-router backbone"):
        analyze_routers(cfg, build_model(plain), max_images=2)
    with pytest.raises(ValueError, match="TEST.ROUTER_ANALYSIS.NUM_IMAGES=0 must be >= 1"):
        analyze_routers(cfg, setup[1], max_images=0)
