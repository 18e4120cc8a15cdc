"""Command line, job setup and process launching (fastreid_ms/engine/defaults.py, launch.py)."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from fastreid_ms.config import ConfigError, get_cfg
from fastreid_ms.engine.defaults import (check_train_config, collect_env_info, default_argument_parser, default_setup,
                                         describe_schedule)
from fastreid_ms.engine.launch import WorkerFailure, build_msrun_command, launch

REPO = Path(__file__).resolve().parents[2]
launch_module = importlib.import_module("fastreid_ms.engine.launch")  # the package exports launch() itself


def test_argument_parser_flags_and_opts():
    args = default_argument_parser().parse_args(
        ["--config-file", "configs/x.yml", "--resume", "--num-gpus", "2", "--machine-rank", "1",
         "SOLVER.BASE_LR", "0.1", "MODEL.DEVICE", "cpu"])
    assert args.config_file == "configs/x.yml" and args.resume and not args.eval_only
    assert (args.num_gpus, args.num_machines, args.machine_rank) == (2, 1, 1)
    assert args.opts == ["SOLVER.BASE_LR", "0.1", "MODEL.DEVICE", "cpu"]
    assert default_argument_parser().parse_args(["--eval-only"]).eval_only


def test_default_setup_writes_outputs_and_seeds(tmp_path):
    cfg_file = tmp_path / "cfg.yml"
    cfg_file.write_text("SOLVER:\n  BASE_LR: 0.02\n")
    cfg = get_cfg()
    cfg.merge_from_file(str(cfg_file))
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.SEED = 123
    cfg.MODEL.DEVICE = "cpu"
    args = default_argument_parser().parse_args(["--config-file", str(cfg_file)])
    default_setup(cfg, args)
    drawn = np.random.rand()
    np.random.seed(123)
    assert drawn == np.random.rand()
    dumped = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert dumped["SOLVER"]["BASE_LR"] == 0.02 and dumped["SEED"] == 123
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "Environment info" in log and "MindSpore" in log and "BASE_LR: 0.02" in log
    info = collect_env_info()
    for item in ("Python", "numpy", "MindSpore", "device target", "CPU", "oneDNN ISA"):
        assert item in info


def test_launch_single_process_runs_main_directly(monkeypatch):
    monkeypatch.delenv("MS_WORKER_NUM", raising=False)
    assert launch(lambda a, b: a + b, 1, args=(2, 3)) == 5
    with pytest.raises(ValueError, match="at least one process"):
        launch(lambda: None, 0)


def test_launch_inside_msrun_worker_initialises_communication(monkeypatch):
    import mindspore.communication as communication

    calls = []
    monkeypatch.setenv("MS_WORKER_NUM", "2")
    monkeypatch.setenv("MS_ROLE", "MS_WORKER")
    monkeypatch.setattr(communication, "init", lambda *a, **k: calls.append("init"))
    monkeypatch.setattr(communication, "get_group_size", lambda *a, **k: 2)
    assert launch(lambda: "ran", 2) == "ran" and calls == ["init"]
    with pytest.raises(RuntimeError, match="msrun started 2 workers"):
        launch(lambda: "ran", 4)


def test_launch_in_msrun_scheduler_process_serves_cluster_and_never_runs_main(monkeypatch):
    """msrun runs the script once more as the scheduler (MS_ROLE=MS_SCHED); it must not re-launch msrun nor train."""
    import mindspore.communication as communication

    calls = []
    monkeypatch.setenv("MS_WORKER_NUM", "2")
    monkeypatch.setenv("MS_ROLE", "MS_SCHED")
    monkeypatch.setattr(communication, "init", lambda *a, **k: calls.append("init"))
    monkeypatch.setattr(launch_module.subprocess, "run", lambda *a, **k: calls.append("msrun"))
    assert launch(lambda: calls.append("main"), 2) is None
    assert calls == ["init"]


def test_launch_several_processes_reexecutes_under_msrun(monkeypatch, tmp_path):
    monkeypatch.delenv("MS_WORKER_NUM", raising=False)
    monkeypatch.chdir(tmp_path)
    seen = {}

    def fake_run(cmd, check, env, stderr):
        seen["cmd"], seen["env"], seen["stderr"] = cmd, env, stderr.name
        return subprocess.CompletedProcess(cmd, seen.get("rc", 0))

    monkeypatch.setattr(launch_module.subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["tools/train_net.py", "--num-gpus", "2", "SOLVER.BASE_LR", "0.1"])
    launch(lambda: None, 2, dist_url="tcp://10.0.0.1:9000")
    assert seen["cmd"] == ["msrun", "--worker_num=2", "--local_worker_num=2", "--master_addr=10.0.0.1",
                           "--master_port=9000", "--log_dir=msrun_log", "--join=True", "tools/train_net.py",
                           "--num-gpus", "2", "SOLVER.BASE_LR", "0.1"]
    assert seen["env"]["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert seen["stderr"] == str(tmp_path / "msrun_log" / "msrun.log")
    seen["rc"] = 1
    with pytest.raises(WorkerFailure, match=r"a worker process failed and msrun stopped the others \(msrun exit code "
                                            r"1\); the workers' output is in .*/msrun_log/worker_<rank>.log"):
        launch(lambda: None, 2)


def test_build_msrun_command_multi_machine():
    cmd = build_msrun_command(["train.py"], 4, num_machines=2, machine_rank=1, dist_url="192.168.1.2:7000")
    assert cmd[:7] == ["msrun", "--worker_num=8", "--local_worker_num=4", "--master_addr=192.168.1.2",
                       "--master_port=7000", "--log_dir=msrun_log", "--join=True"]
    assert cmd[7:] == ["--node_rank=1", "train.py"]
    with pytest.raises(ValueError, match="HOST:PORT"):
        build_msrun_command(["t.py"], 2, dist_url="tcp://nohost")


def _solver_cfg(**overrides):
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "bagtricks_DR50_mix.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = "resnet50_ibn_a-d9d0bb7b.pth"
    for key, value in overrides.items():
        cfg.merge_from_list([key, str(value)])
    return cfg


@pytest.mark.parametrize("overrides,world,message", [
    ({"SOLVER.DP_REPLICAS": 3}, 2, "SOLVER.DP_REPLICAS=3 must be a positive multiple of the number of processes (2)"),
    ({"SOLVER.DP_REPLICAS": 0}, 1, "SOLVER.DP_REPLICAS=0 must be a positive multiple"),
    ({"SOLVER.DP_REPLICAS": 8, "SOLVER.IMS_PER_BATCH": 12}, 2, "a batch of 6 images gives 6 torch.chunk chunks"),
    ({"SOLVER.AMP.ENABLED": True}, 1, "SOLVER.AMP.ENABLED True with SOLVER.META.ENABLED True is not supported"),
    ({"SOLVER.IMS_PER_BATCH": 30}, 1, "SOLVER.IMS_PER_BATCH=30 must be a multiple of 2 x DATALOADER.NUM_INSTANCE=2"),
    ({"MODEL.BACKBONE.PRETRAIN_PATH": ""}, 1, "MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is "
                                              "empty"),
])
def test_solver_settings_that_cannot_work_are_one_error(overrides, world, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_train_config(_solver_cfg(**overrides), world)


def test_recipe_reproduces_the_four_gpu_dataparallel_run():
    cfg = _solver_cfg()
    assert cfg.SOLVER.DP_REPLICAS == 4
    check_train_config(cfg, 1)
    check_train_config(cfg, 2)
    check_train_config(cfg, 4)


def test_renamed_key_names_its_new_name():
    with pytest.raises(ConfigError, match="'SOLVER.EMULATE_DP_REPLICAS' in the command line is now "
                                          "'SOLVER.DP_REPLICAS'"):
        get_cfg().merge_from_list(["SOLVER.EMULATE_DP_REPLICAS", "4"])


def test_schedule_line_states_iterations_devices_and_batch_per_process():
    cfg = _solver_cfg(**{"SOLVER.MAX_EPOCH": 60})
    assert describe_schedule(cfg, 181, 0, 2) == (
        "Training schedule: 181 iterations per epoch x 60 epochs = 10860 iterations, starting at epoch 0; 2 "
        "process(es) on cpu; batch 64 images per iteration in 4 chunk(s) (SOLVER.DP_REPLICAS), 32 images per process")
    assert "resuming at epoch 3 (iteration 550)" in describe_schedule(cfg, 181, 550, 1)
