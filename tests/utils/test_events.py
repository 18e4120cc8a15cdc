"""EventStorage, CommonMetricPrinter, JSONWriter and StepLossWriter (fastreid_ms/utils/events.py)."""
import json
import re

import numpy as np
import pytest

from fastreid_ms.utils.events import (CommonMetricPrinter, EventStorage, JSONWriter, StepLossWriter,
                                      flatten_results_dict, get_event_storage)


def test_storage_history_statistics_and_hints():
    with EventStorage(start_iter=5) as storage:
        assert get_event_storage() is storage
        values = [3.0, 1.0, 2.0, 10.0]
        for v in values:
            storage.put_scalar("loss_x", v)
            storage.step()
        h = storage.history("loss_x")
        assert h.latest() == 10.0 and h.median(3) == 2.0 and h.avg(2) == 6.0
        assert h.global_avg() == pytest.approx(np.mean(values))
        assert [it for _, it in h.values()] == [5, 6, 7, 8]
        storage.put_scalar("lr", 0.1, smoothing_hint=False)
        with pytest.raises(ValueError, match="smoothing_hint"):
            storage.put_scalar("lr", 0.2, smoothing_hint=True)
        latest = storage.latest_with_smoothing_hint(window_size=2)
        assert latest["loss_x"] == (6.0, 8) and latest["lr"] == (0.1, 9)
        with storage.name_scope("val"):
            storage.put_scalar("acc", 1)
        assert "val/acc" in storage.latest()
        with pytest.raises(KeyError, match="nothing"):
            storage.history("nothing")
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()


def test_flatten_results_dict():
    assert flatten_results_dict({"Market1501": {"Rank-1": 90.0, "x": {"y": 1}}, "metric": 2}) == \
        {"Market1501/Rank-1": 90.0, "Market1501/x/y": 1, "metric": 2}


def test_common_metric_printer_format(capture_logs):
    printer = CommonMetricPrinter(max_iter=100)
    with EventStorage(0) as storage:
        storage.epoch = 3
        for it in range(4):
            storage.iter = it
            storage.put_scalars(total_loss=1.0 + it, loss_cls=0.5, time=0.25, data_time=0.01)
            storage.put_scalar("lr", 4e-4, smoothing_hint=False)
        with capture_logs("fastreid_ms.utils.events") as records:
            printer.write()
    line = records[-1].getMessage()
    pattern = (r"^ eta: 0:00:24  epoch/iter: 3/3  total_loss: 2\.5  loss_cls: 0\.5  time: 0\.2500  "
               r"data_time: 0\.0100  lr: 4\.00e-04  max_mem: \d+M$")
    assert re.match(pattern, line), line
    assert storage.latest()["eta_seconds"][0] == pytest.approx(0.25 * 96)


def test_json_writer_writes_new_scalars_once_per_iteration(tmp_path):
    path = tmp_path / "out" / "metrics.json"
    writer = JSONWriter(str(path), window_size=2)
    with EventStorage(0) as storage:
        for it in range(3):
            storage.iter = it
            storage.put_scalar("total_loss", float(it))
        writer.write()
        storage.iter = 3
        storage.put_scalars(**flatten_results_dict({"CUHK03": {"Rank-1": 50.0, "metric": 40.0}}),
                            smoothing_hint=False)
        writer.write()
        writer.write()  # nothing new: no line
    writer.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines == [{"iteration": 2, "total_loss": 1.5},
                     {"iteration": 3, "CUHK03/Rank-1": 50.0, "CUHK03/metric": 40.0}]


def _write_step_losses(path, iterations, first_value):
    writer = StepLossWriter(str(path))
    with EventStorage(iterations[0]) as storage:
        for offset, it in enumerate(iterations):
            storage.iter = it
            storage.put_step_losses("basic", {"loss_cls": first_value + offset})
            writer.write()
    writer.close()


def test_step_loss_writer_keeps_the_history_of_the_resumed_run(tmp_path):
    """A resumed run (first write at iteration 2) replaces the interrupted attempt's records from iteration 2 on,
    including a line cut short by the crash; a fresh run (first write at 0) starts the file over."""
    path = tmp_path / "step_losses.json"
    _write_step_losses(path, [0, 1, 2, 3], 0.0)
    with open(path, "a") as f:
        f.write('{"iteration": 4, "phase": "ba')
    _write_step_losses(path, [2, 3, 4], 10.0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["iteration"], r["loss_cls"]) for r in rows] == [(0, 0.0), (1, 1.0), (2, 10.0), (3, 11.0), (4, 12.0)]

    _write_step_losses(path, [0], 20.0)
    assert [json.loads(line)["loss_cls"] for line in path.read_text().splitlines()] == [20.0]
