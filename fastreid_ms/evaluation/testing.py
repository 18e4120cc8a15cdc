"""Printing and saving evaluation results (``fastreid/evaluation/testing.py``)."""
import json
import logging
import os
from collections.abc import Mapping

import numpy as np
from tabulate import tabulate
from termcolor import colored

from fastreid_ms.utils.events import flatten_results_dict

__all__ = ["print_csv_format", "flatten_results_dict", "results_to_jsonable", "write_results_json"]

logger = logging.getLogger(__name__)


def print_csv_format(results: Mapping) -> str:
    """Log the FastReID results table (tabulate "pipe", floatfmt .2f, numbers left-aligned) and return it.

    ``results`` is either one dataset's metrics, named by its ``'dataset'`` entry (FastReID's DefaultTrainer.test
    sets it; like FastReID this function pops it, so the dict holds only metrics afterwards), or a mapping
    dataset name -> metrics (one row per dataset; the header is taken from the first)::

        | Dataset    | Rank-1   | Rank-5   | Rank-10   | mAP   | mINP   | metric   |
        |:-----------|:---------|:---------|:----------|:------|:-------|:---------|
        | Market1501 | 94.21    | 98.10    | 98.84     | 85.94 | 59.80  | 90.07    |
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"print_csv_format expects a non-empty dict of results, got {results!r}")
    if all(isinstance(v, Mapping) for v in results.values()):
        rows = list(results.items())
    else:
        name = results.pop("dataset", "") if isinstance(results, dict) else results.get("dataset", "")
        rows = [(name, {k: v for k, v in results.items() if k != "dataset"})]
    metrics = list(rows[0][1].keys())
    for name, res in rows:
        if list(res.keys()) != metrics:
            raise ValueError(f"results of {name!r} have metrics {list(res.keys())}, expected {metrics}")
    table = tabulate([(name, *res.values()) for name, res in rows], tablefmt="pipe", floatfmt=".2f",
                     headers=["Dataset"] + metrics, numalign="left")
    logger.info("Evaluation results in csv format: \n" + colored(table, "cyan"))
    return table


def results_to_jsonable(obj):
    """Nested dicts/lists of numpy or python scalars -> JSON-serialisable python objects."""
    if isinstance(obj, Mapping):
        return {str(k): results_to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [results_to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_results_json(results: Mapping, path: str, extra: Mapping = None) -> str:
    """Write ``results`` (e.g. dataset -> metrics; plus ``extra`` entries such as ReidEvaluator.summary) as JSON to
    ``path``, or to ``path/evaluation_results.json`` when ``path`` is a directory. Returns the file written."""
    if os.path.isdir(path) or not path.endswith(".json"):
        path = os.path.join(path, "evaluation_results.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    payload = dict(results_to_jsonable(results))
    if extra:
        payload.update(results_to_jsonable(extra))
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=False)
    logger.info("Evaluation results written to %s", path)
    return path
