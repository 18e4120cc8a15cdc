"""Default command line, job setup, trainer and predictor (FastReID ``engine/defaults.py``).

:func:`default_argument_parser` and :func:`default_setup` are shared by the training and evaluation tools;
:class:`DefaultTrainer` is the standard training workflow, :class:`DefaultPredictor` the feature extractor.
"""
import argparse
import logging
import os
import platform
import sys
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import mindspore
import numpy as np
from PIL import Image

from fastreid_ms.config import domain_class_counts, fill_domain_class_counts, num_source_domains
from fastreid_ms.data import build_reid_test_loader, build_reid_train_loader
from fastreid_ms.data.data_utils import ImageReadError, read_image
from fastreid_ms.data.transforms import build_transforms
from fastreid_ms.evaluation import ReidEvaluator, inference_on_dataset, print_csv_format
from fastreid_ms.evaluation.router_analysis import analyze_routers, router_table, save_router_plot
from fastreid_ms.modeling import build_model
from fastreid_ms.modeling.passes import EvalPass, process_chunks
from fastreid_ms.solver import build_lr_scheduler, build_optimizer, warmup_iterations
from fastreid_ms.utils import comm
from fastreid_ms.utils.checkpoint import Checkpointer, CheckpointWriteError
from fastreid_ms.utils.env import seed_all_rng, set_device
from fastreid_ms.utils.events import CommonMetricPrinter, JSONWriter, StepLossWriter
from fastreid_ms.utils.logger import command_error_logger, log_traceback_to_files, setup_logger
from fastreid_ms.utils.onednn import onednn_isa_decision
from . import hooks
from .launch import WorkerFailure
from .meta_train_loop import MetaLearningTrainer
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase, TrainingPreempted

__all__ = ["default_argument_parser", "default_setup", "collect_env_info", "run_tool", "INPUT_ERRORS", "DefaultTrainer",
           "DefaultPredictor"]


def default_argument_parser() -> argparse.ArgumentParser:
    """FastReID's CLI: ``--config-file FILE [--resume] [--eval-only] [--num-gpus N] [--num-machines M]
    [--machine-rank R] [--dist-url URL] [KEY VALUE ...]``.

    ``--resume`` is a flag: it resumes from ``OUTPUT_DIR/last_checkpoint`` (to start from a given file, use
    ``MODEL.WEIGHTS``). ``--num-gpus`` is the number of devices per machine (one process each, see
    :func:`fastreid_ms.engine.launch.launch`).
    """
    parser = argparse.ArgumentParser(description="fastreid_ms training / evaluation")
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument("--resume", action="store_true",
                        help="resume from OUTPUT_DIR/last_checkpoint (model, optimizer, schedulers, epoch)")
    parser.add_argument("--eval-only", action="store_true", help="perform evaluation only")
    parser.add_argument("--num-gpus", type=int, default=1, help="number of devices (processes) *per machine*")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)")
    parser.add_argument("--dist-url", default="tcp://127.0.0.1:8118",
                        help="address of the rank-0 machine for multi-process runs (msrun master address/port)")
    parser.add_argument("opts", help="Modify config options using the command-line 'KEY VALUE' pairs", default=None,
                        nargs=argparse.REMAINDER)
    return parser


def collect_env_info() -> str:
    """Python, MindSpore, numpy, device target and CPU information, one item per line."""
    lines = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("numpy", np.__version__),
        ("MindSpore", mindspore.__version__),
        ("MindSpore device target", mindspore.get_context("device_target")),
        ("MindSpore mode", "GRAPH" if mindspore.get_context("mode") == mindspore.GRAPH_MODE else "PYNATIVE"),
        ("CPU", platform.processor() or platform.machine()),
        ("CPU count", os.cpu_count()),
        ("oneDNN ISA", onednn_isa_decision()[1]),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)


# What a command-line tool reports as one line: a bad config key or value, a missing, unreadable or damaged file, a
# setting the data or the machine cannot satisfy, a checkpoint that cannot be written (disk full).
INPUT_ERRORS = (ValueError, FileNotFoundError, ImageReadError, CheckpointWriteError)


def run_tool(tool: str, fn: Callable, *args) -> int:
    """Run a command-line tool's ``fn(*args)`` and return its exit code: 0; 2 after an input error
    (:data:`INPUT_ERRORS`), reported as one line ``<tool>: error: <message>`` (line breaks of the message become
    spaces) on stderr with its traceback written
    to the log files only (``OUTPUT_DIR/log.txt`` once the job setup has run); 128 + signal number after a
    preemption (:class:`TrainingPreempted`: one line naming the checkpoint to resume from); 1 after a failed
    data-parallel process (:class:`WorkerFailure`: one line, the traceback in the log files)."""
    try:
        fn(*args)
    except TrainingPreempted as e:
        command_error_logger().error(f"{tool}: {e}")
        return e.exit_code
    except WorkerFailure as e:
        log_traceback_to_files(logging.getLogger("fastreid_ms"), f"{tool}: worker failure")
        command_error_logger().error(f"{tool}: error: {e}")
        return 1
    except INPUT_ERRORS as e:
        log_traceback_to_files(logging.getLogger("fastreid_ms"), f"{tool}: fatal error")
        command_error_logger().error(f"{tool}: error: {' '.join(str(e).split())}")
        return 2
    return 0


def default_setup(cfg, args) -> None:
    """Prepare a job: create ``OUTPUT_DIR``, log to ``OUTPUT_DIR/log.txt``, log the environment, arguments and
    config, dump ``OUTPUT_DIR/config.yaml`` (main process), select ``MODEL.DEVICE`` and seed every RNG from ``SEED``
    (a negative SEED draws a fresh seed, which is logged; every process gets ``SEED + rank``).
    """
    output_dir = cfg.OUTPUT_DIR
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    rank = comm.get_rank()
    setup_logger(output_dir, distributed_rank=rank, name="fastreid_ms")
    logger = logging.getLogger("fastreid_ms")
    set_device(cfg.MODEL.DEVICE)
    logger.info("Rank of current process: {}. World size: {}".format(rank, comm.get_world_size()))
    logger.info("Environment info:\n" + collect_env_info())
    logger.info("Command line arguments: " + str(args))
    config_file = getattr(args, "config_file", "")
    if config_file:
        with open(config_file, "r") as f:
            logger.info("Contents of args.config_file={}:\n{}".format(config_file, f.read()))
    logger.info("Running with full config:\n{}".format(cfg))
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        with open(path, "w") as f:
            f.write(cfg.dump())
        logger.info("Full config saved to {}".format(os.path.abspath(path)))
    seed = cfg.SEED
    seed_all_rng(None if seed < 0 else seed + rank)


class DefaultPredictor:
    """Feature extraction with a trained model: ``predictor(image) -> (D,)`` feature (or ``(N, D)`` for a batch).

    Builds the model from ``cfg`` (no ImageNet pre-training), loads ``MODEL.WEIGHTS`` (a fastreid_ms ``.ckpt`` or a
    PyTorch FastReID ``.pth``) and runs its compiled eval pass (``MODEL.COMPILE``) on the test transform
    (``INPUT.SIZE_TEST``, bicubic). An image is a file path, a PIL image or an ``(H, W, 3)`` uint8 RGB array; a
    batch is a list of them or an ``(N, 3, H, W)`` float array already in the model's input space (0..255).
    """

    def __init__(self, cfg):
        self.cfg = cfg.clone()
        self.cfg.defrost()
        self.cfg.MODEL.BACKBONE.PRETRAIN = False
        self.model = build_model(self.cfg)
        self.model.set_train(False)
        if not cfg.MODEL.WEIGHTS:
            raise ValueError("DefaultPredictor needs MODEL.WEIGHTS (a trained fastreid_ms .ckpt or FastReID .pth)")
        Checkpointer(self.model).load(cfg.MODEL.WEIGHTS, checkpointables=[])
        self.transform = build_transforms(self.cfg, is_train=False)
        self.eval_pass = EvalPass(self.model, compile=self.cfg.MODEL.COMPILE)

    def prepare(self, image) -> np.ndarray:
        """One image (path, PIL image or (H, W, 3) array) as the model's (3, H, W) float32 input (test transform)."""
        if isinstance(image, (str, os.PathLike)):
            image = read_image(os.fspath(image))
        elif isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"DefaultPredictor: an image array must be (H, W, 3) RGB, got shape {image.shape}")
            image = Image.fromarray(image.astype(np.uint8))
        elif not isinstance(image, Image.Image):
            raise TypeError(f"DefaultPredictor: an image is a file path, a PIL image or an (H, W, 3) array, got "
                            f"{type(image).__name__}")
        # the test transform is deterministic: the generator is never drawn from
        return np.asarray(self.transform(image.convert("RGB"), np.random.default_rng(0)), dtype=np.float32)

    def __call__(self, images) -> np.ndarray:
        single = not isinstance(images, (list, tuple)) and not (isinstance(images, np.ndarray) and images.ndim == 4)
        if isinstance(images, np.ndarray) and images.ndim == 4:
            if images.dtype.kind not in "uif":
                raise ValueError(f"DefaultPredictor: a batch array must hold real pixel values (0..255), got dtype "
                                 f"{images.dtype}")
            batch = images.astype(np.float32)
        else:
            batch = np.stack([self.prepare(img) for img in ([images] if single else images)])
        features = self.eval_pass(batch)
        return features[0] if single else features


class DefaultTrainer(TrainerBase):
    """FastReID's default training workflow for fastreid_ms, with ACL-DGReID's meta-learning when
    ``SOLVER.META.ENABLED``.

    Construction (reference order): train loaders -> :meth:`auto_scale_hyperparams` (class counts from the data)
    -> :meth:`build_model` (several processes: all start from rank 0's values) -> :meth:`build_optimizer` (and
    the meta optimizer) -> ``iters_per_epoch = len(train set) // SOLVER.IMS_PER_BATCH`` ->
    :meth:`build_lr_scheduler` (warm-up: ``SOLVER.WARMUP_ITERS`` epochs x iters_per_epoch) -> the step trainer
    (:class:`MetaLearningTrainer`, :class:`AMPTrainer` or
    :class:`SimpleTrainer`) -> :class:`Checkpointer` -> :meth:`build_hooks`. Every ``build_*`` is a classmethod a
    research script can override. Then ``resume_or_load(resume)`` and ``train()``.

    Checkpoints hold the model, both optimizers and both scheduler pairs, the epoch, the data loaders' positions,
    the meta-test RNG and the RNG states, so that ``--resume`` continues exactly where the run stopped (unlike the
    reference, which drops the meta optimizer and its schedulers).
    """

    def __init__(self, cfg):
        super().__init__()
        logger = logging.getLogger("fastreid_ms")
        if not logger.handlers:
            setup_logger()
        cfg = cfg.clone()
        check_train_config(cfg, comm.get_world_size())
        self.meta = bool(cfg.SOLVER.META.ENABLED)
        data_loader, domain_loaders = self.build_train_loader(cfg)
        cfg = self.auto_scale_hyperparams(cfg, data_loader.dataset)
        model = self.build_model(cfg)
        comm.broadcast_cell_state(model)
        optimizer, _ = self.build_optimizer(cfg, model)
        optimizer_meta = self.build_optimizer(cfg, model, flag="meta")[0] if self.meta else None

        self.iters_per_epoch = len(data_loader.dataset) // cfg.SOLVER.IMS_PER_BATCH
        if self.iters_per_epoch < 1:
            raise ValueError(f"the training set has {len(data_loader.dataset)} images, fewer than one batch "
                             f"(SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH})")
        if cfg.SOLVER.WARMUP_ITERS > cfg.SOLVER.MAX_EPOCH:
            raise ValueError(f"SOLVER.WARMUP_ITERS={cfg.SOLVER.WARMUP_ITERS} counts EPOCHS in fastreid_ms (as in "
                             f"ACL-DGReID) and exceeds SOLVER.MAX_EPOCH={cfg.SOLVER.MAX_EPOCH}; upstream FastReID "
                             f"configs give it in iterations - divide by the iterations per epoch "
                             f"({self.iters_per_epoch})")

        if self.meta:
            self._trainer = MetaLearningTrainer(
                model, data_loader, domain_loaders, optimizer, optimizer_meta,
                meta_period=cfg.SOLVER.META.PERIOD, first_iter_basic_steps=cfg.SOLVER.META.FIRST_ITER_BASIC_STEPS,
                adaptor_step_factor=cfg.SOLVER.META.ADAPTOR_STEP_FACTOR,
                zero_grad_keeps_tensors=cfg.SOLVER.ZERO_GRAD_KEEPS_TENSORS,
                dp_replicas=cfg.SOLVER.DP_REPLICAS, seed=_derived_seed(cfg.SEED, "meta"),
                compile=cfg.MODEL.COMPILE)
        else:
            trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
            self._trainer = trainer_cls(model, data_loader, optimizer, compile=cfg.MODEL.COMPILE,
                                        dp_replicas=cfg.SOLVER.DP_REPLICAS,
                                        zero_grad_keeps_tensors=cfg.SOLVER.ZERO_GRAD_KEEPS_TENSORS)
        self.grad_scaler = self._trainer.grad_scaler
        self.model = self._trainer.model
        self.optimizer = optimizer
        self.optimizer_meta = optimizer_meta
        self.scheduler = self.build_lr_scheduler(cfg, optimizer, self.iters_per_epoch)
        self.scheduler_meta = (self.build_lr_scheduler(cfg, optimizer_meta, self.iters_per_epoch)
                               if self.meta else None)
        checkpointables = {"optimizer": optimizer, **self.scheduler, "trainer": self._trainer}
        if self.meta:
            checkpointables["optimizer_meta"] = optimizer_meta
            checkpointables.update({f"{k}_meta": v for k, v in self.scheduler_meta.items()})
        if self.grad_scaler is not None:
            checkpointables["grad_scaler"] = self.grad_scaler
        self.eval_pass = EvalPass(self.model, compile=cfg.MODEL.COMPILE)
        self.checkpointer = Checkpointer(self.model, cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process(),
                                         **checkpointables)
        self.start_epoch = 0
        self.start_iter = 0
        self.max_epoch = cfg.SOLVER.MAX_EPOCH
        self.warmup_iters = warmup_iterations(cfg, self.iters_per_epoch)
        self.delay_epochs = cfg.SOLVER.DELAY_EPOCHS
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume`` and ``OUTPUT_DIR/last_checkpoint``: restore everything (the best metric so far included)
        and continue at the iteration after the checkpoint (the next epoch, or within an epoch after a preemption);
        otherwise load ``MODEL.WEIGHTS`` (model only) if set."""
        checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            default = (int(checkpoint.get("epoch", -1)) + 1) * self.iters_per_epoch
            self.start_iter = int(checkpoint.get("iteration", default))
            self.start_epoch = self.start_iter // self.iters_per_epoch
            for hook in self._hooks:
                if isinstance(hook, hooks.PeriodicCheckpointer):
                    hook.restore(checkpoint)

    def build_hooks(self) -> List:
        """IterationTimer, LRScheduler (main, then meta), [PreciseBN], [LayerFreeze], EvalHook,
        PeriodicCheckpointer, PeriodicWriter and TrainingCurves (main process), Preemption, in this order."""
        cfg = self.cfg
        ret = [hooks.IterationTimer(), hooks.LRScheduler(self.optimizer, self.scheduler)]
        if self.meta:
            ret.append(hooks.LRScheduler(self.optimizer_meta, self.scheduler_meta))
        if cfg.TEST.PRECISE_BN.ENABLED and hooks.get_bn_cells(self.model):
            precise_cfg = cfg.clone()
            precise_cfg.defrost()
            precise_cfg.DATASETS.NAMES = (cfg.TEST.PRECISE_BN.DATASET,)
            ret.append(hooks.PreciseBN(self.model, self.build_train_loader(precise_cfg)[0],
                                       cfg.TEST.PRECISE_BN.NUM_ITER))
        if len(cfg.MODEL.FREEZE_LAYERS) > 0 and cfg.SOLVER.FREEZE_ITERS > 0:
            ret.append(hooks.LayerFreeze(self.model, cfg.MODEL.FREEZE_LAYERS, cfg.SOLVER.FREEZE_ITERS))

        def test_and_save_results():
            # every process evaluates with rank 0's BN running statistics, as DDP's buffer broadcast gives
            comm.broadcast_cell_state(self.model)
            self._last_eval_results = self.test(self.cfg, self.eval_pass)
            return self._last_eval_results

        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD,
                                                  save_every_epoch_after=cfg.SOLVER.SAVE_EVERY_EPOCH_AFTER,
                                                  max_to_keep=cfg.SOLVER.CHECKPOINT_KEEP))
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=cfg.SOLVER.LOG_PERIOD))
            if cfg.OUTPUT_DIR:
                ret.append(hooks.TrainingCurves(cfg.OUTPUT_DIR, cfg.TEST.EVAL_PERIOD))
        periodic = [h for h in ret if isinstance(h, hooks.PeriodicCheckpointer)]
        ret.append(hooks.Preemption(self.checkpointer, periodic[0] if periodic else None))
        return ret

    def build_writers(self) -> List:
        """Console (CommonMetricPrinter), ``OUTPUT_DIR/metrics.json`` (smoothed scalars per logging step) and
        ``OUTPUT_DIR/step_losses.json`` (every forward pass's losses, one line each) writers."""
        return [CommonMetricPrinter(self.max_epoch * self.iters_per_epoch),
                JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json")),
                StepLossWriter(os.path.join(self.cfg.OUTPUT_DIR, "step_losses.json"))]

    def train(self):
        """Train from ``start_epoch`` to ``SOLVER.MAX_EPOCH``; returns the last evaluation results."""
        logging.getLogger(__name__).info(describe_schedule(self.cfg, self.iters_per_epoch, self.start_iter,
                                                           comm.get_world_size()))
        super().train(self.start_epoch, self.max_epoch, self.iters_per_epoch, start_iter=self.start_iter)
        return getattr(self, "_last_eval_results", None)

    def run_step(self):
        self._trainer.iter = self.iter
        self._trainer.run_step()

    # ------------------------------------------------------------------------------------------ builders
    @classmethod
    def build_model(cls, cfg):
        model = build_model(cfg)
        logging.getLogger(__name__).info("Model:\n{}".format(model))
        return model

    @classmethod
    def build_optimizer(cls, cfg, model, flag: Optional[str] = None):
        return build_optimizer(cfg, model, flag=flag)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer, iters_per_epoch: int):
        return build_lr_scheduler(cfg, optimizer, iters_per_epoch)

    @classmethod
    def build_train_loader(cls, cfg):
        """``(mixed loader, [per-domain loaders])`` (:func:`fastreid_ms.data.build_reid_train_loader`)."""
        logging.getLogger(__name__).info("Prepare training set")
        return build_reid_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name: str):
        """``(loader, num_query)`` (:func:`fastreid_ms.data.build_reid_test_loader`)."""
        return build_reid_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name: str, num_query: int, output_dir: Optional[str] = None):
        return ReidEvaluator(cfg, num_query, output_dir, dataset_name=dataset_name)

    @classmethod
    def test(cls, cfg, model) -> Dict:
        """Evaluate ``model`` (a Cell, or an :class:`~fastreid_ms.modeling.passes.EvalPass` whose compiled graph is
        reused, as the trainer's periodic evaluation does) on every ``DATASETS.TESTS`` set; prints FastReID's table
        and returns ``{dataset: results}`` (the results alone for a single set)."""
        logger = logging.getLogger(__name__)
        results = OrderedDict()
        for dataset_name in cfg.DATASETS.TESTS:
            logger.info("Prepare testing set")
            data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
            evaluator = cls.build_evaluator(cfg, dataset_name, num_query)
            results_i = inference_on_dataset(model, data_loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED,
                                             compile=cfg.MODEL.COMPILE)
            results[dataset_name] = results_i
            if comm.is_main_process():
                print_csv_format(OrderedDict([("dataset", dataset_name), *results_i.items()]))
        net = model.model if isinstance(model, EvalPass) else model
        if cfg.TEST.ROUTER_ANALYSIS.ENABLED and getattr(net, "is_meta", False):
            cls.analyze_routers(cfg, net)
        if len(results) == 1:
            results = list(results.values())[0]
        return results

    @classmethod
    def analyze_routers(cls, cfg, model):
        """Log the mean routing weights per source domain and target set and draw them to
        ``OUTPUT_DIR/router_weights.png`` (:mod:`fastreid_ms.evaluation.router_analysis`); returns the means. Every
        process computes them (so that none waits alone at the next collective, whose timeout is short on CPU);
        the main process logs and draws."""
        means = analyze_routers(cfg, model, cfg.TEST.ROUTER_ANALYSIS.NUM_IMAGES)
        if not comm.is_main_process():
            return means
        logger = logging.getLogger(__name__)
        logger.info("Mean routing weights (router R, expert e) per domain:\n%s", router_table(means))
        if cfg.OUTPUT_DIR:
            path = save_router_plot(means, os.path.join(cfg.OUTPUT_DIR, "router_weights.png"))
            logger.info("Routing weights drawn to %s", path)
        return means

    @staticmethod
    def auto_scale_hyperparams(cfg, train_set):
        """Fill the class counts from the training set where they are 0: ``MODEL.HEADS.NUM_CLASSES`` (all ids) and
        the ids per source domain (``train_set.num_classes_per_domain``): ``NUM_CLASSES1/2/3`` for three domains,
        ``NUM_CLASSES_PER_DOMAIN`` for any other number or when it is set
        (:func:`fastreid_ms.config.fill_domain_class_counts`); re-dumps ``OUTPUT_DIR/config.yaml``."""
        cfg = cfg.clone()
        frozen = cfg.is_frozen()
        cfg.defrost()
        heads = cfg.MODEL.HEADS
        if heads.NUM_CLASSES == 0:
            heads.NUM_CLASSES = int(train_set.num_classes)
        fill_domain_class_counts(heads, train_set.num_classes_per_domain, num_source_domains(cfg))
        logging.getLogger(__name__).info(
            "Auto-scaling the config to num_classes=%d, num_classes1/2/3=%d/%d/%d, num_classes_per_domain=%s",
            heads.NUM_CLASSES, heads.NUM_CLASSES1, heads.NUM_CLASSES2, heads.NUM_CLASSES3,
            list(heads.NUM_CLASSES_PER_DOMAIN))
        if comm.is_main_process() and cfg.OUTPUT_DIR and os.path.isdir(cfg.OUTPUT_DIR):
            with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
                f.write(cfg.dump())
        if frozen:
            cfg.freeze()
        return cfg


def describe_schedule(cfg, iters_per_epoch: int, start_iter: int, world_size: int) -> str:
    """The line a training run starts with: iterations per epoch and in total, where it starts, the device and
    processes, and the images each process computes per iteration."""
    total = iters_per_epoch * cfg.SOLVER.MAX_EPOCH
    batch, replicas = cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.DP_REPLICAS
    start = (f"resuming at epoch {start_iter // iters_per_epoch} (iteration {start_iter})" if start_iter
             else "starting at epoch 0")
    return (f"Training schedule: {iters_per_epoch} iterations per epoch x {cfg.SOLVER.MAX_EPOCH} epochs = {total} "
            f"iterations, {start}; {world_size} process(es) on {cfg.MODEL.DEVICE}; batch {batch} images per "
            f"iteration in {replicas} chunk(s) (SOLVER.DP_REPLICAS), {batch // world_size} images per process")


def check_train_config(cfg, world_size: int) -> None:
    """Settings that cannot work, as one ValueError naming the keys, before anything is built:
    ``SOLVER.DP_REPLICAS`` must be a multiple of the process count and, with several processes, give every
    replica images of each batch (the meta-test batch is half of ``SOLVER.IMS_PER_BATCH``); mixed precision is
    not available with the meta-learning schedule; identity samplers need batches of whole identities; the
    per-domain class counts of a MetaEmbeddingHead must fit ``DATASETS.NAMES``
    (:func:`fastreid_ms.config.domain_class_counts`); ImageNet initialisation needs its weight file."""
    replicas = cfg.SOLVER.DP_REPLICAS
    if replicas < 1 or replicas % world_size:
        raise ValueError(f"SOLVER.DP_REPLICAS={replicas} must be a positive multiple of the number of processes "
                         f"({world_size}): each process computes DP_REPLICAS / processes chunks of every batch "
                         f"(FastReID's DistributedDataParallel over {world_size} processes is SOLVER.DP_REPLICAS "
                         f"{world_size})")
    batch, instances = cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler" and (instances < 1 or batch % (2 * instances)):
        raise ValueError(f"SOLVER.IMS_PER_BATCH={batch} must be a multiple of 2 x DATALOADER.NUM_INSTANCE="
                         f"{instances} with {cfg.DATALOADER.SAMPLER_TRAIN}: every batch holds NUM_INSTANCE images "
                         f"of each identity, and the per-domain loaders draw batches of IMS_PER_BATCH / 2")
    smallest = batch // 2 if cfg.SOLVER.META.ENABLED else batch
    if world_size > 1:
        process_chunks(smallest, replicas, 0, world_size)
    if cfg.SOLVER.AMP.ENABLED and cfg.SOLVER.META.ENABLED:
        raise ValueError("SOLVER.AMP.ENABLED True with SOLVER.META.ENABLED True is not supported: the meta step's "
                         "inner update (fast weights from the meta-train gradients) and its second gradient are "
                         "not loss-scaled; set SOLVER.AMP.ENABLED False")
    if cfg.MODEL.HEADS.NAME == "MetaEmbeddingHead":
        domain_class_counts(cfg)
    backbone = cfg.MODEL.BACKBONE
    if backbone.PRETRAIN and not backbone.PRETRAIN_PATH:
        raise ValueError("MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: download the "
                         "ImageNet weights the backbone needs (README: Pretrained weights) and set "
                         "MODEL.BACKBONE.PRETRAIN_PATH to the file, or set MODEL.BACKBONE.PRETRAIN False")


def _derived_seed(seed: int, purpose: str) -> Optional[int]:
    """A per-purpose seed derived from ``SEED`` (None = fresh randomness when SEED is negative)."""
    if seed < 0:
        return None
    return int(np.random.SeedSequence([int(seed), sum(purpose.encode())]).generate_state(1)[0])
