"""Bad inputs through the public entry points: each ends with exit code 2 (tools) or a ValueError (library), one
line that names the file, key or value at fault and what was expected, no traceback on stderr, and no checkpoint,
``last_checkpoint`` or metrics file of OUTPUT_DIR changed (``log.txt`` records the error with its traceback).
"""
import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.data.synthetic import make_synthetic_reid
from fastreid_ms.evaluation import ReidEvaluator
from torch_writer import fake_torch, save_state_dict_pth  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "configs" / "bagtricks_DR50_mix.yml")
DATASETS = ("cuhkSYSU", "Market1501", "MSMT17", "CUHK03")
KEPT_FILES = {"model_0000.ckpt": b"an earlier checkpoint", "last_checkpoint": b"model_0000.ckpt",
              "metrics.json": b'{"iteration": 0}\n'}


class _Evil:
    def __reduce__(self):
        return os.system, ("echo pwned > pwned.txt",)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    tiny = dict(num_train_ids=4, num_test_ids=4, min_images=2, max_images=2, num_distractors=1, num_junk=1, num_val=1)
    make_synthetic_reid(str(root / "data"), DATASETS, seed=2, image_size=(32, 16),
                        sizes={name: tiny for name in DATASETS})
    (root / "broken.yml").write_text("MODEL:\n  DEVICE: [cpu\n")
    (root / "orphan.yml").write_text("_BASE_: nowhere.yml\n")
    (root / "text.ckpt").write_text("not a checkpoint")
    (root / "evil.pth").write_bytes(pickle.dumps(_Evil()))
    (root / "cut.pth").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    content = b"not the published weights"
    wrong = format(int(hashlib.sha256(content).hexdigest()[:8], 16) ^ 1, "08x")
    (root / f"resnet50_ibn_a-{wrong}.pth").write_bytes(content)
    return root


def _opts(files, output_dir):
    return ["DATASETS.ROOT", str(files / "data"), "OUTPUT_DIR", str(output_dir), "MODEL.BACKBONE.PRETRAIN", "False",
            "INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]", "SOLVER.IMS_PER_BATCH", "8",
            "SOLVER.DP_REPLICAS", "1", "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_ITERS", "0", "TEST.IMS_PER_BATCH", "8",
            "DATALOADER.NUM_WORKERS", "0", "MODEL.COMPILE", "False"]


def _damaged_resume(out: Path, files: Path):
    """OUTPUT_DIR whose only checkpoint, named by last_checkpoint, is damaged."""
    (out / "model_0000.ckpt").write_bytes(b"\x08\x01" * 100)


def _undecodable_images(out: Path, files: Path):
    """A copy of the datasets beside OUTPUT_DIR whose images are cut to half their bytes: they exist, are not empty
    and can be opened (the up-front check passes), but do not decode when a loader worker reads them."""
    root = out.parent / "broken_data"
    shutil.copytree(files / "data", root)
    for image in list(root.rglob("*.jpg")) + list(root.rglob("*.png")):
        data = image.read_bytes()
        image.write_bytes(data[:len(data) // 2])


# (name, train_net arguments before the tiny options, options after them, expected message fragment, prepare)
CASES = [
    ("config file missing", ["--config-file", "no/such.yml"], [], "config file not found: 'no/such.yml'", None),
    ("config not YAML", ["--config-file", "{files}/broken.yml"], [], "broken.yml' is not valid YAML", None),
    ("_BASE_ missing", ["--config-file", "{files}/orphan.yml"], [], "config file not found: '{files}/nowhere.yml'",
     None),
    ("unknown key", ["--config-file", RECIPE], ["SOLVER.BASE_RL", "0.1"], "unknown config key 'SOLVER.BASE_RL'", None),
    ("value of the wrong type", ["--config-file", RECIPE], ["SOLVER.MAX_EPOCH", "many"], "SOLVER.MAX_EPOCH", None),
    ("override without value", ["--config-file", RECIPE], ["SOLVER.BASE_LR"], "KEY VALUE pairs", None),
    ("unknown device", ["--config-file", RECIPE], ["MODEL.DEVICE", "tpu"], "MODEL.DEVICE='tpu' is not a known device",
     None),
    ("device not present", ["--config-file", RECIPE], ["MODEL.DEVICE", "ascend"], "MODEL.DEVICE='ascend'", None),
    ("unregistered dataset", ["--config-file", RECIPE], ["DATASETS.NAMES", "('Market1502',)"],
     "no object named 'Market1502' in the 'DATASET' registry (did you mean Market1501", None),
    ("unregistered architecture", ["--config-file", RECIPE], ["MODEL.META_ARCHITECTURE", "Baseline2"],
     "no object named 'Baseline2' in the 'META_ARCH' registry", None),
    ("unknown optimizer", ["--config-file", RECIPE], ["SOLVER.OPT", "Lion"], "SOLVER.OPT='Lion' is not supported",
     None),
    ("unknown schedule", ["--config-file", RECIPE], ["SOLVER.SCHED", "Step"], "SOLVER.SCHED='Step' is not supported",
     None),
    ("unknown metric", ["--config-file", RECIPE, "--eval-only"], ["TEST.METRIC", "manhattan"],
     "TEST.METRIC must be 'cosine' or 'euclidean', got 'manhattan'", None),
    ("replicas not a multiple", ["--config-file", RECIPE], ["SOLVER.DP_REPLICAS", "0"],
     "SOLVER.DP_REPLICAS=0 must be a positive multiple of the number of processes (1)", None),
    ("batch of partial identities", ["--config-file", RECIPE], ["SOLVER.IMS_PER_BATCH", "10"],
     "SOLVER.IMS_PER_BATCH=10 must be a multiple of 2 x DATALOADER.NUM_INSTANCE=2", None),
    ("pretraining without weights", ["--config-file", RECIPE], ["MODEL.BACKBONE.PRETRAIN", "True"],
     "MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty", None),
    ("pretrained file missing", ["--config-file", RECIPE],
     ["MODEL.BACKBONE.PRETRAIN", "True", "MODEL.BACKBONE.PRETRAIN_PATH", "{files}/r50.pth"],
     "MODEL.BACKBONE.PRETRAIN_PATH '{files}/r50.pth' does not exist", None),
    ("pretrained download corrupt", ["--config-file", RECIPE],
     ["MODEL.BACKBONE.PRETRAIN", "True", "MODEL.BACKBONE.PRETRAIN_PATH", "{hashed}"],
     "does not match the", None),
    ("warm-up in iterations", ["--config-file", RECIPE], ["SOLVER.WARMUP_ITERS", "2000"],
     "SOLVER.WARMUP_ITERS=2000 counts EPOCHS", None),
    ("dataset folder missing", ["--config-file", RECIPE], ["DATASETS.ROOT", "{files}/nowhere"], "{files}/nowhere",
     None),
    ("train-only test set", ["--config-file", RECIPE, "--eval-only"], ["DATASETS.TESTS", "('cuhkSYSU',)"],
     "cuhkSYSU has 0 query and 0 gallery images; it cannot be used in DATASETS.TESTS", None),
    ("weights missing", ["--config-file", RECIPE, "--eval-only"], ["MODEL.WEIGHTS", "{files}/gone.ckpt"],
     "Checkpoint '{files}/gone.ckpt' not found", None),
    ("weights not a checkpoint", ["--config-file", RECIPE, "--eval-only"], ["MODEL.WEIGHTS", "{files}/text.ckpt"],
     "checkpoint {files}/text.ckpt is truncated or corrupt", None),
    ("pickle that runs code", ["--config-file", RECIPE, "--eval-only"], ["MODEL.WEIGHTS", "{files}/evil.pth"],
     "system", None),
    ("truncated .pth", ["--config-file", RECIPE, "--eval-only"], ["MODEL.WEIGHTS", "{files}/cut.pth"],
     "{files}/cut.pth", None),
    ("resume from a damaged checkpoint", ["--config-file", RECIPE, "--resume"], [],
     "no intact checkpoint to resume from in {out}", _damaged_resume),
    ("image that does not decode during training", ["--config-file", RECIPE],
     ["DATASETS.ROOT", "{tmp}/broken_data", "DATALOADER.NUM_WORKERS", "2"], "cannot read image {tmp}/broken_data/",
     _undecodable_images),
]


@pytest.mark.parametrize("name,args,opts,expected,prepare", CASES, ids=[c[0] for c in CASES])
def test_train_net_bad_input(name, args, opts, expected, prepare, files, tmp_path, load_tool, capfd):
    out = tmp_path / "out"
    out.mkdir()
    for file_name, content in KEPT_FILES.items():
        (out / file_name).write_bytes(content)
    if prepare is not None:
        prepare(out, files)
    kept = {p.name: p.read_bytes() for p in out.iterdir()}
    hashed = next(files.glob("resnet50_ibn_a-*.pth"))

    def fill(text):
        return text.format(files=files, out=out, hashed=hashed, tmp=tmp_path)

    argv = [fill(a) for a in args] + _opts(files, out) + [fill(o) for o in opts]
    code = load_tool("train_net").cli(argv)
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("train_net.py: error:")]
    assert code == 2, err[-2000:]
    assert len(errors) == 1 and fill(expected) in errors[0], err[-2000:]
    assert err.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in err
    for file_name, content in kept.items():
        assert (out / file_name).read_bytes() == content, f"{file_name} changed"
    assert not (tmp_path / "pwned.txt").exists() and not Path("pwned.txt").exists()


def test_evaluation_with_an_empty_gallery_or_nan_features_names_the_dataset():
    cfg = get_cfg()
    evaluator = ReidEvaluator(cfg, num_query=2, dataset_name="Market1501")
    evaluator.process({"targets": np.array([1, 2]), "camids": np.array([0, 1])}, np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="dataset 'Market1501': the gallery set is empty"):
        evaluator.evaluate()
    evaluator = ReidEvaluator(cfg, num_query=0, dataset_name="Market1501")
    evaluator.process({"targets": np.array([1, 2]), "camids": np.array([0, 1])}, np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="dataset 'Market1501': the query set is empty"):
        evaluator.evaluate()
    evaluator = ReidEvaluator(cfg, num_query=1, dataset_name="Market1501")
    features = np.ones((2, 4), np.float32)
    features[1, 2] = np.nan
    with pytest.raises(ValueError, match="dataset 'Market1501': the model produced NaN or inf features"):
        evaluator.process({"targets": np.array([1, 2]), "camids": np.array([0, 1]),
                           "img_paths": np.array(["q.jpg", "g.jpg"])}, features)
