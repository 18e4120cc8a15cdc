"""Training engine: the hook-driven train loop, standard hooks, command line/job setup and process launching."""
from .defaults import (INPUT_ERRORS, DefaultPredictor, DefaultTrainer, collect_env_info, default_argument_parser,
                       default_setup, run_tool)
from .hooks import (CallbackHook, EvalHook, IterationTimer, LayerFreeze, LRScheduler, PeriodicCheckpointer,
                    PeriodicWriter, PreciseBN, Preemption, TrainingCurves)
from .launch import WorkerFailure, launch
from .meta_train_loop import MetaLearningTrainer
from .train_loop import AMPTrainer, DynamicGradScaler, HookBase, SimpleTrainer, TrainerBase, TrainingPreempted

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer", "DynamicGradScaler", "CallbackHook",
           "IterationTimer", "PeriodicWriter", "PeriodicCheckpointer", "LRScheduler", "EvalHook", "PreciseBN",
           "TrainingCurves", "Preemption", "TrainingPreempted", "LayerFreeze", "default_argument_parser",
           "default_setup", "collect_env_info", "run_tool", "INPUT_ERRORS", "launch", "WorkerFailure",
           "DefaultTrainer", "DefaultPredictor", "MetaLearningTrainer"]
