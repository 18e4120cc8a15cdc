"""Evaluate a model on one test set and save its rank lists and CMC curve (FastReID's demo/visualize_result.py).

Every rank list is a PNG: the query beside its top-k gallery images, true matches framed green and false ones red;
``cmc.png`` plots the CMC curve (``roc.png`` the ROC with TEST.ROC.ENABLED). The model is built with
``DefaultTrainer.build_model`` on ``MODEL.DEVICE``, seeded by ``SEED``, and loaded from MODEL.WEIGHTS (fastreid_ms
.ckpt or PyTorch .pth; required). Input errors end it with one line and exit code 2::

    python tools/visualize_result.py --config-file configs/bagtricks_DR50_mix.yml --dataset-name CUHK03 \\
        --output vis_rank_list --num-vis 50 MODEL.WEIGHTS model_best.pth
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.data import build_reid_test_loader  # noqa: E402
from fastreid_ms.engine import DefaultTrainer, run_tool  # noqa: E402
from fastreid_ms.evaluation import DatasetEvaluator, ReidEvaluator, inference_on_dataset, print_csv_format  # noqa: E402
from fastreid_ms.evaluation.roc import roc_curve_from_sorted  # noqa: E402
from fastreid_ms.utils.checkpoint import Checkpointer  # noqa: E402
from fastreid_ms.utils.env import seed_all_rng, set_device  # noqa: E402
from fastreid_ms.utils.logger import setup_logger  # noqa: E402
from fastreid_ms.utils.visualizer import save_cmc_curve, save_rank_lists, save_roc_curve  # noqa: E402

logger = logging.getLogger("fastreid_ms.visualize_result")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Save rank lists and the CMC curve of a re-id model")
    parser.add_argument("--config-file", metavar="FILE", required=True, help="path to config file")
    parser.add_argument("--dataset-name", required=True, help="a test dataset name (e.g. Market1501)")
    parser.add_argument("--output", default="./vis_rank_list", help="directory for the PNG files")
    parser.add_argument("--vis-label", action="store_true", help="add a row with the query's true matches")
    parser.add_argument("--num-vis", type=int, default=100, help="number of queries to draw")
    parser.add_argument("--rank-sort", default="ascending", choices=["ascending", "descending"],
                        help="draw queries by AP: ascending = worst first")
    parser.add_argument("--label-sort", default="ascending", choices=["ascending", "descending"],
                        help="order of the true-match row: ascending = least similar first")
    parser.add_argument("--max-rank", type=int, default=10, help="gallery images per rank list")
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def setup_cfg(args):
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.freeze()
    return cfg


class _KeepDetails(DatasetEvaluator):
    """Runs a ReidEvaluator and keeps its distances, labels and per-query ranking besides the results."""

    def __init__(self, evaluator: ReidEvaluator):
        self.evaluator = evaluator
        self.details = None

    def reset(self):
        self.evaluator.reset()

    def process(self, inputs, outputs):
        self.evaluator.process(inputs, outputs)

    def evaluate(self):
        results, data, rank = self.evaluator.evaluate_detailed()
        self.details = (data, rank)
        return results


def main(args) -> None:
    cfg = setup_cfg(args)
    setup_logger(name="fastreid_ms")
    set_device(cfg.MODEL.DEVICE)
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("MODEL.WEIGHTS is empty: visualize_result.py draws the rank lists of a trained model; give "
                         "its .ckpt or .pth as MODEL.WEIGHTS")
    model = DefaultTrainer.build_model(cfg)
    Checkpointer(model).load(cfg.MODEL.WEIGHTS, checkpointables=[])
    test_loader, num_query = build_reid_test_loader(cfg, dataset_name=args.dataset_name)
    evaluator = _KeepDetails(ReidEvaluator(cfg, num_query, dataset_name=args.dataset_name))
    results = inference_on_dataset(model, test_loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED,
                                   compile=cfg.MODEL.COMPILE)
    print_csv_format({args.dataset_name: results})
    data, rank = evaluator.details
    if data.q_paths is None:
        raise ValueError(f"the test loader of {args.dataset_name!r} gives no 'img_paths'; cannot draw images")
    save_rank_lists(args.output, data.dist, rank.ap, data.q_paths, data.g_paths, data.q_pids, data.g_pids,
                    data.q_camids, data.g_camids, num_vis=args.num_vis, rank_sort=args.rank_sort,
                    label_sort=args.label_sort, max_rank=args.max_rank, vis_label=args.vis_label)
    save_cmc_curve(rank.cmc, os.path.join(args.output, "cmc.png"), title=f"CMC {args.dataset_name}")
    if rank.roc_pos is not None:
        fpr, tpr, _ = roc_curve_from_sorted(rank.roc_pos, rank.roc_neg)
        save_roc_curve(fpr, tpr, os.path.join(args.output, "roc.png"), title=f"ROC {args.dataset_name}")
    logger.info("Rank lists and curves saved to %s", args.output)


if __name__ == "__main__":
    sys.exit(run_tool("visualize_result.py", main, get_parser().parse_args()))
