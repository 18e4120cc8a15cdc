"""Bad input: missing folders/list files name the path and the expected layout; corrupt images fail naming the
file unless DATALOADER.SKIP_UNREADABLE_IMAGES skips them with one warning line; grayscale, RGBA, palette and
EXIF-rotated images are read correctly; unknown dataset/sampler names list the valid ones."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fastreid_ms.data import (DATASET_REGISTRY, DatasetLayoutError, ImageReadError, build_reid_test_loader,
                              build_reid_train_loader, read_image)
from fastreid_ms.data.data_utils import check_image_files
from fastreid_ms.data.datasets import MSMT17, Market1501
from fastreid_ms.data.synthetic import SyntheticSizes, make_synthetic_reid

NAMES = ["Market1501", "DukeMTMC", "MSMT17", "cuhkSYSU", "CUHK03"]


@pytest.mark.parametrize("name", NAMES)
def test_missing_dataset_folder_names_path_and_layout(tmp_path, name):
    with pytest.raises(DatasetLayoutError) as err:
        DATASET_REGISTRY.get(name)(root=str(tmp_path))
    message = str(err.value)
    assert str(tmp_path) in message and "Expected layout" in message and name in message


def test_missing_market_subfolder_is_named(tmp_path):
    make_synthetic_reid(str(tmp_path), ["Market1501"], seed=0, image_size=(32, 16),
                        sizes={"Market1501": SyntheticSizes(num_train_ids=3, num_test_ids=2)})
    query = tmp_path / "Market-1501-v15.09.15" / "query"
    shutil.rmtree(query)
    with pytest.raises(DatasetLayoutError, match=str(query)):
        Market1501(root=str(tmp_path))


@pytest.mark.parametrize("list_name", ["list_train.txt", "list_query.txt"])
def test_missing_msmt_list_file_is_named(tmp_path, list_name):
    make_synthetic_reid(str(tmp_path), ["MSMT17"], seed=0, image_size=(32, 16),
                        sizes={"MSMT17": SyntheticSizes(num_train_ids=3, num_test_ids=2)})
    missing = tmp_path / "MSMT17_V1" / list_name
    os.remove(missing)
    with pytest.raises(DatasetLayoutError) as err:
        data = MSMT17(root=str(tmp_path))
        data.query
    assert str(missing) in str(err.value) and "list_train.txt" in str(err.value)


def test_malformed_msmt_list_line_is_named(tmp_path):
    make_synthetic_reid(str(tmp_path), ["MSMT17"], seed=0, image_size=(32, 16),
                        sizes={"MSMT17": SyntheticSizes(num_train_ids=3, num_test_ids=2)})
    with open(tmp_path / "MSMT17_V1" / "list_train.txt", "a") as f:
        f.write("not-a-valid-line\n")
    with pytest.raises(ValueError, match=r"list_train\.txt:\d+"):
        MSMT17(root=str(tmp_path))


def test_bad_market_file_name_is_named(tmp_path):
    make_synthetic_reid(str(tmp_path), ["Market1501"], seed=0, image_size=(32, 16),
                        sizes={"Market1501": SyntheticSizes(num_train_ids=3, num_test_ids=2)})
    bad = tmp_path / "Market-1501-v15.09.15" / "bounding_box_train" / "holiday.jpg"
    Image.new("RGB", (16, 32)).save(bad)
    with pytest.raises(ValueError, match="holiday.jpg"):
        Market1501(root=str(tmp_path)).train


def test_unregistered_name_lists_registered_names(make_cfg):
    with pytest.raises(KeyError) as err:
        build_reid_train_loader(make_cfg(names=("Market1501", "Market1502")))
    message = str(err.value)
    assert "Market1502" in message
    assert all(name in message for name in NAMES)


def test_unknown_sampler_lists_the_available_ones(make_cfg):
    with pytest.raises(ValueError, match="NaiveIdentitySampler"):
        build_reid_train_loader(make_cfg(DATALOADER__SAMPLER_TRAIN="FancySampler"))


def test_train_only_dataset_cannot_be_tested(make_cfg):
    with pytest.raises(ValueError, match="cuhkSYSU"):
        build_reid_test_loader(make_cfg(), "cuhkSYSU")


@pytest.fixture
def corrupt_root(tmp_path):
    """A cuhkSYSU copy whose first image is truncated garbage."""
    make_synthetic_reid(str(tmp_path), ["cuhkSYSU"], seed=0, image_size=(32, 16),
                        sizes={"cuhkSYSU": SyntheticSizes(num_train_ids=6, min_images=2, max_images=2)})
    folder = tmp_path / "cuhk_sysu" / "cropped_images"
    bad = sorted(folder.iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:40])
    return str(tmp_path), str(bad)


@pytest.mark.parametrize("workers", [0, 1])
def test_corrupt_image_fails_naming_the_file(make_cfg, corrupt_root, workers):
    root, bad = corrupt_root
    cfg = make_cfg(names=("cuhkSYSU",), root=root, DATALOADER__NUM_WORKERS=workers,
                   DATALOADER__SAMPLER_TRAIN="TrainingSampler", SOLVER__IMS_PER_BATCH=12)
    loader, _ = build_reid_train_loader(cfg)
    with pytest.raises(ImageReadError, match=os.path.basename(bad)):
        it = iter(loader)
        for _ in range(3):
            next(it)
    loader.close()


def test_skip_switch_drops_unreadable_image_with_one_warning(make_cfg, corrupt_root, capture_logs):
    root, bad = corrupt_root
    cfg = make_cfg(names=("cuhkSYSU",), root=root, DATALOADER__SKIP_UNREADABLE_IMAGES=True,
                   DATALOADER__SAMPLER_TRAIN="TrainingSampler", SOLVER__IMS_PER_BATCH=11)
    with capture_logs("fastreid_ms.data") as records:
        loader, _ = build_reid_train_loader(cfg)
    warnings = [r for r in records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and bad in warnings[0].getMessage()
    assert len(loader.dataset) == 11
    it = iter(loader)
    paths = np.concatenate([next(it)["img_paths"] for _ in range(3)]).tolist()
    loader.close()
    assert bad not in paths and len(set(paths)) == 11


def test_missing_image_file_is_named(tmp_path):
    with pytest.raises(ImageReadError, match="nowhere.jpg"):
        read_image(str(tmp_path / "nowhere.jpg"))


def test_grayscale_rgba_and_palette_images_become_rgb(tmp_path):
    gray = np.arange(32 * 16, dtype=np.uint8).reshape(32, 16)
    Image.fromarray(gray, "L").save(tmp_path / "gray.jpg", quality=100)
    rgba = np.zeros((32, 16, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "palette.png")
    for name in ("gray.jpg", "rgba.png", "palette.png"):
        image = read_image(str(tmp_path / name))
        assert image.mode == "RGB" and image.size == (16, 32), name
    g = np.asarray(read_image(str(tmp_path / "gray.jpg")), np.int16)
    assert np.abs(g[..., 0] - g[..., 1]).max() == 0 and np.abs(g[..., 0] - gray).max() <= 3
    assert tuple(np.asarray(read_image(str(tmp_path / "rgba.png")))[0, 0]) == (200, 0, 0)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    upright = np.zeros((40, 20, 3), np.uint8)
    upright[:10] = (255, 0, 0)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    stored.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    assert Image.open(tmp_path / "rotated.jpg").size == (40, 20)
    image = read_image(str(tmp_path / "rotated.jpg"))
    assert image.size == (20, 40)
    array = np.asarray(image, np.int16)
    assert array[:8, :, 0].mean() > 200 and array[-8:, :, 0].mean() < 50, "red band must end up on top"


def test_empty_image_file_fails_before_training_naming_it(make_cfg, corrupt_root):
    root, bad = corrupt_root
    open(bad, "wb").close()
    cfg = make_cfg(names=("cuhkSYSU",), root=root, DATALOADER__SAMPLER_TRAIN="TrainingSampler",
                   SOLVER__IMS_PER_BATCH=12)
    with pytest.raises(ImageReadError, match=f"cuhkSYSU train: 1 of 12 image files are missing, empty or "
                                             f"unreadable: {bad} \\(empty\\)"):
        build_reid_train_loader(cfg)


def test_file_check_names_missing_files_and_counts_them(tmp_path):
    good = tmp_path / "a.jpg"
    good.write_bytes(b"x")
    items = [(str(good), 0, 0)] + [(str(tmp_path / f"gone{i}.jpg"), 0, 0) for i in range(4)]
    with pytest.raises(ImageReadError, match=f"Market1501 query/gallery: 4 of 5 image files are missing, empty or "
                                             f"unreadable: {tmp_path / 'gone0.jpg'} \\(missing\\); .*; \\.\\.\\."):
        check_image_files(items, "Market1501 query/gallery")
    check_image_files(items[:1], "fine")
