"""Rank-list PNGs, CMC/ROC plots (Pillow only) and tools/visualize_result.py end to end with a stand-in model/loader."""
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastreid_ms.utils.visualizer import (MATCH_COLOR, MISMATCH_COLOR, load_image, render_rank_list,
                                          save_cmc_curve, save_rank_lists, save_roc_curve)

REPO = Path(__file__).resolve().parents[2]
CELL = (16, 32)


def solid(color, size=(10, 20)):
    return np.full((size[1], size[0], 3), color, dtype=np.uint8)


def test_render_rank_list_frames_matches_green_and_others_red():
    gallery = [solid((10 * i, 50, 200)) for i in range(4)]
    matches = [True, False, False, True]
    img = render_rank_list(solid((255, 255, 0)), gallery, matches, captions=["a"] * 4, cell_size=CELL, border=2)
    w, h = CELL
    x0 = w + 2 * 8
    for i, ok in enumerate(matches):
        x = x0 + i * (w + 8)
        assert img.getpixel((x, 0)) == (MATCH_COLOR if ok else MISMATCH_COLOR)
        assert img.getpixel((x + w // 2, h // 2)) == (10 * i, 50, 200)  # the image itself inside the frame
    assert img.getpixel((w // 2, h // 2)) == (255, 255, 0)  # the query, unframed
    assert img.getpixel((0, 0)) == (255, 255, 0)
    with_labels = render_rank_list(solid(0), gallery, matches, label_images=gallery[:2], cell_size=CELL)
    assert with_labels.size[1] > img.size[1]
    with pytest.raises(ValueError, match="match flags"):
        render_rank_list(solid(0), gallery, matches[:2], cell_size=CELL)


def test_load_image_inputs_and_errors(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(solid((1, 2, 3))).save(path)
    assert load_image(str(path), (5, 7)).size == (5, 7)
    chw = np.full((3, 4, 6), 200.0, dtype=np.float32)
    assert load_image(chw, (6, 4)).getpixel((0, 0)) == (200, 200, 200)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(str(tmp_path / "missing.png"), (5, 5))
    with pytest.raises(ValueError, match="image array"):
        load_image(np.zeros((4, 4)), (5, 5))


def _write_images(folder, n, prefix):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}_{i:03d}.png"
        Image.fromarray(solid(((37 * i) % 256, 100, 150))).save(p)
        paths.append(str(p))
    return np.array(paths)


def test_save_rank_lists_order_files_and_frames(tmp_path):
    rng = np.random.default_rng(0)
    nq, ng = 6, 12
    q_pids = np.array([0, 1, 2, 3, 4, 99])
    g_pids = np.arange(ng) % 5
    q_cams, g_cams = np.zeros(nq, np.int64), np.ones(ng, np.int64)
    dist = rng.random((nq, ng)).astype(np.float32)
    ap = np.array([0.9, 0.2, 0.5, 1.0, 0.3, np.nan])  # query 5 has no match
    q_paths = _write_images(tmp_path / "q", nq, "q")
    g_paths = _write_images(tmp_path / "g", ng, "g")
    out = tmp_path / "vis"
    written = save_rank_lists(str(out), dist, ap, q_paths, g_paths, q_pids, g_pids, q_cams, g_cams, num_vis=4,
                              max_rank=3, cell_size=CELL)
    assert [q for q, _ in written] == [1, 4, 2, 0]  # lowest AP first, the query without a match left out
    assert all(os.path.isfile(p) and p.endswith(".png") for _, p in written)
    assert len(list(out.glob("*.png"))) == 4
    best = save_rank_lists(str(tmp_path / "vis2"), dist, ap, q_paths, g_paths, q_pids, g_pids, q_cams, g_cams,
                           num_vis=2, rank_sort="descending", max_rank=3, cell_size=CELL)
    assert [q for q, _ in best] == [3, 0]
    qi, path = written[0]
    img = Image.open(path).convert("RGB")
    top = np.argsort(dist[qi])[:3]
    for i, g in enumerate(top):
        color = MATCH_COLOR if g_pids[g] == q_pids[qi] else MISMATCH_COLOR
        assert img.getpixel((CELL[0] + 16 + i * (CELL[0] + 8), 0)) == color
    labelled = save_rank_lists(str(tmp_path / "vis3"), dist, ap, q_paths, g_paths, q_pids, g_pids, q_cams, g_cams,
                               num_vis=1, max_rank=3, vis_label=True, cell_size=CELL)
    assert Image.open(labelled[0][1]).size[1] > img.size[1]
    with pytest.raises(ValueError, match="rank_sort"):
        save_rank_lists(str(out), dist, ap, q_paths, g_paths, q_pids, g_pids, q_cams, g_cams, rank_sort="up")
    with pytest.raises(ValueError, match="sizes disagree"):
        save_rank_lists(str(out), dist, ap[:3], q_paths, g_paths, q_pids, g_pids, q_cams, g_cams)


def test_cmc_and_roc_plots(tmp_path):
    cmc = np.minimum(1.0, 0.6 + 0.05 * np.arange(50)).astype(np.float32)
    path = save_cmc_curve(cmc, str(tmp_path / "plots" / "cmc.png"))
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (480, 640, 3)
    curve = np.all(img == (31, 119, 180), axis=-1)
    assert curve.sum() > 200  # a drawn line, not an empty canvas
    rows = np.flatnonzero(curve.any(axis=1))
    assert rows.max() - rows.min() > 100  # it rises from 60% to 100%
    roc = save_roc_curve(np.array([0, 1e-4, 1e-2, 1.0]), np.array([0, 0.3, 0.8, 1.0]), str(tmp_path / "roc.png"))
    assert Image.open(roc).size == (640, 480)


def _load_tool():
    spec = importlib.util.spec_from_file_location("visualize_result", REPO / "tools" / "visualize_result.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_visualize_result_tool_end_to_end(tmp_path, monkeypatch):
    """The CLI with stand-ins for DefaultTrainer.build_model / build_reid_test_loader / Checkpointer.load."""
    from mindspore import nn

    import fastreid_ms.engine as engine
    import fastreid_ms.utils.checkpoint as checkpoint

    rng = np.random.default_rng(1)
    nq, ng = 4, 10
    pids = np.concatenate([np.arange(nq), np.arange(ng) % nq])
    cams = np.concatenate([np.zeros(nq, np.int64), np.ones(ng, np.int64)])
    colors = rng.integers(0, 256, (nq + ng, 3))
    paths = _write_images(tmp_path / "imgs", nq + ng, "img")
    images = np.stack([np.full((3, 8, 4), c[:, None, None], np.float32) for c in colors[pids]])
    images += rng.normal(0, 20, images.shape).astype(np.float32)

    class Net(nn.Cell):
        def construct(self, images):
            return images.mean(axis=(2, 3))

    loader = [{"images": images[s:s + 5], "targets": pids[s:s + 5], "camids": cams[s:s + 5],
               "img_paths": paths[s:s + 5]} for s in range(0, nq + ng, 5)]
    loaded = []

    class Trainer:
        @staticmethod
        def build_model(cfg):
            return Net()

    class Checkpointer:
        def __init__(self, model):
            self.model = model

        def load(self, path, checkpointables=None):
            loaded.append((path, checkpointables))

    monkeypatch.setitem(sys.modules, "fastreid_ms.data",
                        types.SimpleNamespace(build_reid_test_loader=lambda cfg, dataset_name: (loader, nq)))
    monkeypatch.setitem(sys.modules, "fastreid_ms.engine",
                        types.SimpleNamespace(DefaultTrainer=Trainer, run_tool=engine.run_tool))
    monkeypatch.setattr(checkpoint, "Checkpointer", Checkpointer, raising=False)
    tool = _load_tool()
    out = tmp_path / "vis"
    args = tool.get_parser().parse_args(
        ["--config-file", str(REPO / "configs" / "Base-bagtricks.yml"), "--dataset-name", "Tiny", "--output",
         str(out), "--num-vis", "3", "--max-rank", "4", "--vis-label", "MODEL.WEIGHTS", "w.pth",
         "TEST.ROC.ENABLED", "True"])
    tool.main(args)
    assert loaded == [("w.pth", [])]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "cmc.png" in pngs and "roc.png" in pngs
    assert len([p for p in pngs if p.startswith("rank_")]) == 3


def test_visualize_result_refuses_an_untrained_model_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "visualize_result.py"), "--config-file",
                             str(REPO / "configs" / "Base-bagtricks.yml"), "--dataset-name", "Market1501",
                             "--output", str(tmp_path)], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "visualize_result.py: error: MODEL.WEIGHTS is empty: visualize_result.py draws the rank lists of a trained "
        "model; give its .ckpt or .pth as MODEL.WEIGHTS"]
    assert "Training model from scratch" not in result.stdout
