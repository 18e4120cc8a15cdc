"""Data-parallel training through ``launch`` and MindSpore's msrun with 2 CPU worker processes: the command is
re-executed under msrun, every worker trains on its shard of each global batch with averaged gradients, and the
workers end with identical weights; evaluation gathers the shards."""
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from fastreid_ms.data.synthetic import make_synthetic_reid

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    sys.path.insert(0, {repo!r})
    from fastreid_ms.config import get_cfg
    from fastreid_ms.engine import DefaultTrainer, default_argument_parser, default_setup, launch
    from fastreid_ms.utils import comm

    def main(args):
        cfg = get_cfg()
        cfg.merge_from_file({repo!r} + "/configs/Market1501/bagtricks_R50.yml")
        cfg.merge_from_list(args.opts)
        default_setup(cfg, args)
        trainer = DefaultTrainer(cfg)
        results = trainer.train()
        weights = np.concatenate([p.asnumpy().ravel() for p in trainer.optimizer.parameters])
        np.save(f"{{cfg.OUTPUT_DIR}}/weights_rank{{comm.get_rank()}}.npy", weights)
        if comm.is_main_process():
            np.save(f"{{cfg.OUTPUT_DIR}}/map.npy", np.array(results["mAP"]))

    if __name__ == "__main__":
        args = default_argument_parser().parse_args()
        launch(main, args.num_gpus, dist_url=args.dist_url, args=(args,))
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_worker_data_parallel_training_keeps_replicas_identical(tmp_path):
    data = tmp_path / "data"
    make_synthetic_reid(str(data), ["Market1501"], seed=3, image_size=(64, 32),
                        sizes={"Market1501": dict(num_train_ids=8, num_test_ids=4, min_images=2, max_images=2)})
    script = tmp_path / "dp_train.py"
    script.write_text(SCRIPT.format(repo=str(REPO)))
    out = tmp_path / "out"
    opts = ["DATASETS.ROOT", str(data), "OUTPUT_DIR", str(out), "MODEL.BACKBONE.DEPTH", "18x",
            "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.PRETRAIN", "False", "INPUT.SIZE_TRAIN", "[64, 32]",
            "INPUT.SIZE_TEST", "[64, 32]", "INPUT.REA.ENABLED", "False", "SOLVER.IMS_PER_BATCH", "8",
            "DATALOADER.NUM_INSTANCE", "2", "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "1",
            "SOLVER.WARMUP_ITERS", "0", "TEST.EVAL_PERIOD", "1", "TEST.IMS_PER_BATCH", "8", "SEED", "1"]
    result = subprocess.run([sys.executable, str(script), "--num-gpus", "2",
                             "--dist-url", f"tcp://127.0.0.1:{_free_port()}", *opts], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "msrun_log").glob("*.log")))
    assert result.returncode == 0, (result.stderr[-2000:], logs[-4000:])
    rank0, rank1 = np.load(out / "weights_rank0.npy"), np.load(out / "weights_rank1.npy")
    np.testing.assert_array_equal(rank0, rank1)
    assert "World size: 2" in (out / "log.txt").read_text()
    assert 0.0 <= float(np.load(out / "map.npy")) <= 100.0
