"""Re-id evaluation: inference loop, ReidEvaluator, CMC/mAP/mINP, AQE, re-ranking, ROC, result printing."""
from .evaluator import DatasetEvaluator, inference_context, inference_on_dataset
from .query_expansion import aqe
from .rank import RankResult, evaluate_rank, kept_ranking, query_has_match, rank_queries
from .reid_evaluation import EvalData, ReidEvaluator
from .rerank import re_ranking
from .roc import ROC_FPRS, evaluate_roc, roc_curve, roc_curve_from_sorted, tpr_at_fpr
from .testing import flatten_results_dict, print_csv_format, results_to_jsonable, write_results_json

__all__ = [
    "DatasetEvaluator", "inference_context", "inference_on_dataset", "aqe", "RankResult", "evaluate_rank",
    "kept_ranking", "query_has_match", "rank_queries", "EvalData", "ReidEvaluator", "re_ranking", "ROC_FPRS",
    "evaluate_roc", "roc_curve", "roc_curve_from_sorted", "tpr_at_fpr", "flatten_results_dict", "print_csv_format",
    "results_to_jsonable", "write_results_json",
]
