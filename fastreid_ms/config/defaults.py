"""Default configuration of fastreid_ms.

Every key of FastReID's ``fastreid/config/defaults.py`` is here with the same default, plus the keys that the
ACL-DGReID fork (``MODEL.HEADS.NUM_CLASSES1/2/3``) and fastreid_ms add (``MODEL.HEADS.NUM_CLASSES_PER_DOMAIN``,
``DATASETS.ROOT``, ``SEED``, the ``MODEL.DEVICE`` values of MindSpore, and the reference-quirk switches documented
where they are used).
"""
from .config import CfgNode as CN

_C = CN()

# -----------------------------------------------------------------------------
# MODEL
# -----------------------------------------------------------------------------
_C.MODEL = CN()
# MindSpore device: "cpu", "gpu" or "ascend", optionally with ":<device id>" ("gpu:1"). "cuda[:N]" is read as "gpu[:N]".
_C.MODEL.DEVICE = "cpu"
_C.MODEL.META_ARCHITECTURE = "Baseline"

_C.MODEL.FREEZE_LAYERS = []

# MoCo memory size
_C.MODEL.QUEUE_SIZE = 8192

# ---------------------------------------------------------------------------- #
# Backbone options
# ---------------------------------------------------------------------------- #
_C.MODEL.BACKBONE = CN()

_C.MODEL.BACKBONE.NAME = "build_resnet_backbone"
_C.MODEL.BACKBONE.DEPTH = "50x"
_C.MODEL.BACKBONE.LAST_STRIDE = 1
# Backbone feature dimension
_C.MODEL.BACKBONE.FEAT_DIM = 2048
# Normalization method for the convolution layers.
_C.MODEL.BACKBONE.NORM = "BN"
# If use IBN block in backbone
_C.MODEL.BACKBONE.WITH_IBN = False
# If use SE block in backbone
_C.MODEL.BACKBONE.WITH_SE = False
# If use Non-local block in backbone
_C.MODEL.BACKBONE.WITH_NL = False
# Vision Transformer options
_C.MODEL.BACKBONE.SIE_COE = 3.0
_C.MODEL.BACKBONE.STRIDE_SIZE = (16, 16)
_C.MODEL.BACKBONE.DROP_PATH_RATIO = 0.1
_C.MODEL.BACKBONE.DROP_RATIO = 0.0
_C.MODEL.BACKBONE.ATT_DROP_RATE = 0.0
# If use ImageNet pretrain model
_C.MODEL.BACKBONE.PRETRAIN = False
# Pretrain model path (a PyTorch .pth, read without torch, or a fastreid_ms .ckpt)
_C.MODEL.BACKBONE.PRETRAIN_PATH = ''

# ---------------------------------------------------------------------------- #
# REID HEADS options
# ---------------------------------------------------------------------------- #
_C.MODEL.HEADS = CN()
_C.MODEL.HEADS.NAME = "EmbeddingHead"
# Normalization method for the convolution layers.
_C.MODEL.HEADS.NORM = "BN"
# Number of identity (single-domain FastReID heads)
_C.MODEL.HEADS.NUM_CLASSES = 0
# Number of identities of source domain 1/2/3 (ACL-DGReID MetaEmbeddingHead, the reference's keys: exactly three
# source domains). 0 = filled from the training set by DefaultTrainer.
_C.MODEL.HEADS.NUM_CLASSES1 = 0
_C.MODEL.HEADS.NUM_CLASSES2 = 0
_C.MODEL.HEADS.NUM_CLASSES3 = 0
# Number of identities of every source domain, one per DATASETS.NAMES entry (MetaEmbeddingHead with any number of
# domains, e.g. the five of Protocol 1). [] = NUM_CLASSES1/2/3 for three domains, else filled from the training set
# (a 0 entry too). When both are set they must agree; a count list whose length is not len(DATASETS.NAMES), or
# NUM_CLASSES1/2/3 with another number of domains, is a ValueError (fastreid_ms.config.source_domains).
_C.MODEL.HEADS.NUM_CLASSES_PER_DOMAIN = []
# Embedding dimension in head
_C.MODEL.HEADS.EMBEDDING_DIM = 0
# If use BNneck in embedding
_C.MODEL.HEADS.WITH_BNNECK = False
# Triplet feature using feature before(after) bnneck
_C.MODEL.HEADS.NECK_FEAT = "before"  # options: before, after
# Pooling layer type
_C.MODEL.HEADS.POOL_LAYER = "GlobalAvgPool"

# Classification layer type
_C.MODEL.HEADS.CLS_LAYER = "Linear"  # ArcSoftmax" or "CircleSoftmax"

# Margin and Scale for margin-based classification layer
_C.MODEL.HEADS.MARGIN = 0.
_C.MODEL.HEADS.SCALE = 1

# ---------------------------------------------------------------------------- #
# REID LOSSES options
# ---------------------------------------------------------------------------- #
_C.MODEL.LOSSES = CN()
_C.MODEL.LOSSES.NAME = ("CrossEntropyLoss",)

# Cross Entropy Loss options
_C.MODEL.LOSSES.CE = CN()
# if epsilon == 0, it means no label smooth regularization,
# if epsilon == -1, it means adaptive label smooth regularization
_C.MODEL.LOSSES.CE.EPSILON = 0.0
_C.MODEL.LOSSES.CE.ALPHA = 0.2
_C.MODEL.LOSSES.CE.SCALE = 1.0

# Focal Loss options
_C.MODEL.LOSSES.FL = CN()
_C.MODEL.LOSSES.FL.ALPHA = 0.25
_C.MODEL.LOSSES.FL.GAMMA = 2
_C.MODEL.LOSSES.FL.SCALE = 1.0

# Triplet Loss options
_C.MODEL.LOSSES.TRI = CN()
_C.MODEL.LOSSES.TRI.MARGIN = 0.3
_C.MODEL.LOSSES.TRI.NORM_FEAT = False
_C.MODEL.LOSSES.TRI.HARD_MINING = False
_C.MODEL.LOSSES.TRI.SCALE = 1.0

# Circle Loss options
_C.MODEL.LOSSES.CIRCLE = CN()
_C.MODEL.LOSSES.CIRCLE.MARGIN = 0.25
_C.MODEL.LOSSES.CIRCLE.GAMMA = 128
_C.MODEL.LOSSES.CIRCLE.SCALE = 1.0

# Cosface Loss options
_C.MODEL.LOSSES.COSFACE = CN()
_C.MODEL.LOSSES.COSFACE.MARGIN = 0.25
_C.MODEL.LOSSES.COSFACE.GAMMA = 128
_C.MODEL.LOSSES.COSFACE.SCALE = 1.0

# ACL-DGReID routing-path cluster losses (intraCluster / interCluster, modeling/losses/cluster_loss.py). Both False =
# the reference's behaviour, which changes the numbers:
# the domain centroid is the scalar mean of all elements of the domain's routing weights; True = per-dimension mean.
_C.MODEL.LOSSES.CLUSTER = CN()
_C.MODEL.LOSSES.CLUSTER.PER_DIMENSION_CENTROID = False
# interCluster with fewer than two domains in the batch returns domain_ids.float().mean() (a gradient-free constant
# equal to the domain id); True = return 0 instead.
_C.MODEL.LOSSES.CLUSTER.ZERO_IF_SINGLE_DOMAIN = False

# Path to a checkpoint file to be loaded to the model (fastreid_ms .ckpt or PyTorch FastReID .pth).
_C.MODEL.WEIGHTS = ""

# Values to be used for image normalization
_C.MODEL.PIXEL_MEAN = [0.485*255, 0.456*255, 0.406*255]
# Values to be used for image normalization
_C.MODEL.PIXEL_STD = [0.229*255, 0.224*255, 0.225*255]

# Run the training and evaluation passes and the optimizer updates as compiled MindSpore graphs (mindspore.jit) on
# every device. False runs them operator by operator (PyNative), for debugging: same numbers, several times slower.
_C.MODEL.COMPILE = True

# -----------------------------------------------------------------------------
# KNOWLEDGE DISTILLATION
# -----------------------------------------------------------------------------

_C.KD = CN()
_C.KD.MODEL_CONFIG = []
_C.KD.MODEL_WEIGHTS = []
_C.KD.EMA = CN({"ENABLED": False})
_C.KD.EMA.MOMENTUM = 0.999

# -----------------------------------------------------------------------------
# INPUT
# -----------------------------------------------------------------------------
_C.INPUT = CN()
# Size of the image during training
_C.INPUT.SIZE_TRAIN = [256, 128]
# Size of the image during test
_C.INPUT.SIZE_TEST = [256, 128]

# `True` if cropping is used for data augmentation during training
_C.INPUT.CROP = CN({"ENABLED": False})
# Size of the image cropped
_C.INPUT.CROP.SIZE = [224, 224]
# Size of the origin size cropped
_C.INPUT.CROP.SCALE = [0.16, 1]
# Aspect ratio of the origin aspect ratio cropped
_C.INPUT.CROP.RATIO = [3./4., 4./3.]

# Random probability for image horizontal flip
_C.INPUT.FLIP = CN({"ENABLED": False})
_C.INPUT.FLIP.PROB = 0.5

# Value of padding size
_C.INPUT.PADDING = CN({"ENABLED": False})
_C.INPUT.PADDING.MODE = 'constant'
_C.INPUT.PADDING.SIZE = 10

# Random color jitter
_C.INPUT.CJ = CN({"ENABLED": False})
_C.INPUT.CJ.PROB = 0.5
_C.INPUT.CJ.BRIGHTNESS = 0.15
_C.INPUT.CJ.CONTRAST = 0.15
_C.INPUT.CJ.SATURATION = 0.1
_C.INPUT.CJ.HUE = 0.1
# Reference quirk (ACL-DGReID data/transforms/build.py): the training pipeline applies ColorJitter with CJ.PROB and the
# CJ.* strengths even when CJ.ENABLED is False. True reproduces the reference; False makes CJ.ENABLED decide.
_C.INPUT.CJ.REFERENCE_ALWAYS_ON = True

# Random Affine
_C.INPUT.AFFINE = CN({"ENABLED": False})

# Auto augmentation
_C.INPUT.AUTOAUG = CN({"ENABLED": False})
_C.INPUT.AUTOAUG.PROB = 0.0

# Augmix augmentation
_C.INPUT.AUGMIX = CN({"ENABLED": False})
_C.INPUT.AUGMIX.PROB = 0.0

# Random Erasing
_C.INPUT.REA = CN({"ENABLED": False})
_C.INPUT.REA.PROB = 0.5
_C.INPUT.REA.VALUE = [0.485*255, 0.456*255, 0.406*255]
# Random Patch
_C.INPUT.RPT = CN({"ENABLED": False})
_C.INPUT.RPT.PROB = 0.5

# -----------------------------------------------------------------------------
# Dataset
# -----------------------------------------------------------------------------
_C.DATASETS = CN()
# Root folder holding the datasets; get_cfg() sets it from env FASTREID_DATASETS when that is set.
_C.DATASETS.ROOT = "datasets"
# List of the dataset names for training
_C.DATASETS.NAMES = ("Market1501",)
# List of the dataset names for testing
_C.DATASETS.TESTS = ("Market1501",)
# Combine trainset and testset joint training
_C.DATASETS.COMBINEALL = False
# Split evaluated on the DATASETS.TESTS datasets that have several (split_id of PRID, GRID, iLIDS: 0-9, VIPeR: 0-19,
# CUHK03: its split file's splits); the small DG targets' published numbers average splits 0-9.
_C.DATASETS.SPLIT_ID = 0
# Synthetic datasets (fastreid_ms.data.synthetic): when ENABLED, every dataset of NAMES / TESTS whose folder is absent
# under ROOT is generated there first, in its real on-disk layout (demo, tests, benchmarks; no download needed).
_C.DATASETS.SYNTHETIC = CN({"ENABLED": False})
_C.DATASETS.SYNTHETIC.SEED = 0
# (height, width) of the generated crops
_C.DATASETS.SYNTHETIC.IMAGE_SIZE = [128, 64]
# identities in the train split / in query+gallery, images per train identity, gallery images per camera of a test id
_C.DATASETS.SYNTHETIC.TRAIN_IDS = 32
_C.DATASETS.SYNTHETIC.TEST_IDS = 32
_C.DATASETS.SYNTHETIC.MIN_IMAGES = 2
_C.DATASETS.SYNTHETIC.MAX_IMAGES = 6
_C.DATASETS.SYNTHETIC.TEST_IMAGES = 2

# -----------------------------------------------------------------------------
# DataLoader
# -----------------------------------------------------------------------------
_C.DATALOADER = CN()
# Options: TrainingSampler, NaiveIdentitySampler, BalancedIdentitySampler
_C.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
# Number of instance for each person
_C.DATALOADER.NUM_INSTANCE = 4
_C.DATALOADER.NUM_WORKERS = 8

# For set re-weight
_C.DATALOADER.SET_WEIGHT = []
# Skip images that cannot be read (one warning line each) instead of failing on them.
_C.DATALOADER.SKIP_UNREADABLE_IMAGES = False

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CN()

# AUTOMATIC MIXED PRECISION
_C.SOLVER.AMP = CN({"ENABLED": False})

# Optimizer
_C.SOLVER.OPT = "Adam"

_C.SOLVER.MAX_EPOCH = 120

_C.SOLVER.BASE_LR = 3e-4

# This LR is applied to the last classification layer if
# you want to 10x higher than BASE_LR.
_C.SOLVER.HEADS_LR_FACTOR = 1.

_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False

_C.SOLVER.WEIGHT_DECAY = 0.0005
# The weight decay that's applied to parameters of normalization layers
# (typically the affine transformation)
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0005

# The previous detection code used a 2x higher LR and 0 WD for bias.
_C.SOLVER.BIAS_LR_FACTOR = 1.0
_C.SOLVER.WEIGHT_DECAY_BIAS = _C.SOLVER.WEIGHT_DECAY
# ACL-DGReID halves the lr of cells whose name contains "adaptor_sub", which never matches its DR50 cells
# (adaptor1_sub ... adaptor4_sub): False keeps that reference behaviour (all lrs equal); True applies the x0.5 to
# every adaptor{N}_sub cell as apparently intended.
_C.SOLVER.FIX_ADAPTOR_SUB_LR = False

# Multi-step learning rate options
_C.SOLVER.SCHED = "MultiStepLR"

_C.SOLVER.DELAY_EPOCHS = 0

_C.SOLVER.GAMMA = 0.1
_C.SOLVER.STEPS = [30, 55]

# Cosine annealing learning rate options
_C.SOLVER.ETA_MIN_LR = 1e-7

# Warmup options
_C.SOLVER.WARMUP_FACTOR = 0.1
_C.SOLVER.WARMUP_ITERS = 1000
_C.SOLVER.WARMUP_METHOD = "linear"

# Backbone freeze iters
_C.SOLVER.FREEZE_ITERS = 0

_C.SOLVER.CHECKPOINT_PERIOD = 20
# Keep only the newest N periodic model_NNNN checkpoints (model_best and model_final are always kept); 0 keeps all,
# as the reference does.
_C.SOLVER.CHECKPOINT_KEEP = 0

# Console / metrics.json logging period in iterations (FastReID hard-codes 200); writers also run at every epoch end.
_C.SOLVER.LOG_PERIOD = 200
# ACL-DGReID also saves model_{epoch:04d} after EVERY epoch once epoch + 1 > this value (hard-coded 40 in the
# reference); a negative value disables these extra checkpoints (FastReID's schedule).
_C.SOLVER.SAVE_EVERY_EPOCH_AFTER = 40

# Number of images per batch across all machines.
_C.SOLVER.IMS_PER_BATCH = 64

# ACL-DGReID meta-learning schedule (engine/train_loop.py): off for ordinary FastReID configs.
_C.SOLVER.META = CN({"ENABLED": False})
# A meta step (meta-train on the other source domains, meta-test on a held-out one) every PERIOD iterations.
_C.SOLVER.META.PERIOD = 3
# Basic steps run at iteration 0 (the reference warms up with 10), one per iteration afterwards.
_C.SOLVER.META.FIRST_ITER_BASIC_STEPS = 10
# Inner step size of parameters whose name contains "adaptor" = meta lr x this factor.
_C.SOLVER.META.ADAPTOR_STEP_FACTOR = 0.5
# PyTorch 1.x zero_grad semantics (the reference ran PyTorch 1.6): a parameter that once had a gradient keeps a zero
# gradient in later steps, so SGD still applies weight decay and momentum to it. False = PyTorch >= 2 semantics
# (parameters without a gradient in a step are left untouched).
_C.SOLVER.ZERO_GRAD_KEEPS_TENSORS = True
# Data-parallel replicas R: the number of GPUs of the reference's torch.nn.DataParallel run (its published results
# used 4). Every global batch (mixed, meta-train, meta-test) is cut into R contiguous chunks as torch.chunk cuts it;
# each chunk's forward has its own BN batch statistics and losses, the optimized losses are the means over the chunks,
# and BN running statistics are those of chunk 0. With P processes (--num-gpus / msrun; P must divide R) process p
# computes chunks p*R/P .. (p+1)*R/P-1 and the others' gradients are averaged in; the same SEED gives the same model
# on any P. 1 = the reference code on one GPU.
_C.SOLVER.DP_REPLICAS = 1

# Gradient clipping
_C.SOLVER.CLIP_GRADIENTS = CN({"ENABLED": False})
# Type of gradient clipping: "value" (clip every element) or "norm" (clip the norm of each parameter's gradient)
_C.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
# Maximum absolute value used for clipping gradients
_C.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 5.0
# Floating point number p for L-p norm to be used with the "norm" gradient clipping type; for L-inf, use .inf
_C.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0

_C.TEST = CN()

_C.TEST.EVAL_PERIOD = 20

# Number of images per batch across all machines.
_C.TEST.IMS_PER_BATCH = 64
_C.TEST.METRIC = "cosine"
_C.TEST.ROC = CN({"ENABLED": False})
# Report TPR@FPR in percent like the other metrics. False = the reference's fraction in [0, 1].
_C.TEST.ROC.PERCENT = False
_C.TEST.FLIP = CN({"ENABLED": False})
# CUHK03 classic single-shot CMC (torchreid's eval_cuhk03: 10 repeats of one random gallery image per identity,
# seeded by SEED when SEED >= 0); unreachable from the reference's config. AP and mINP stay those of the full ranking.
_C.TEST.USE_METRIC_CUHK03 = False
# The query x gallery distances are computed and ranked in blocks of query rows of about this many MiB (float32),
# so evaluation memory stays bounded (MSMT17's whole matrix would be 3.8 GB).
_C.TEST.DIST_BLOCK_MB = 256.0

# Average query expansion
_C.TEST.AQE = CN({"ENABLED": False})
_C.TEST.AQE.ALPHA = 3.0
_C.TEST.AQE.QE_TIME = 1
_C.TEST.AQE.QE_K = 5

# Re-rank
_C.TEST.RERANK = CN({"ENABLED": False})
_C.TEST.RERANK.K1 = 20
_C.TEST.RERANK.K2 = 6
_C.TEST.RERANK.LAMBDA = 0.3

# Precise batchnorm
# After every evaluation of a model with routers (DR backbone + ACL-DGReID head): the mean expert weights of each
# HyperRouter per source domain and target set, from up to NUM_IMAGES images of each, logged as a table and drawn
# to OUTPUT_DIR/router_weights.png.
_C.TEST.ROUTER_ANALYSIS = CN({"ENABLED": True})
_C.TEST.ROUTER_ANALYSIS.NUM_IMAGES = 64

_C.TEST.PRECISE_BN = CN({"ENABLED": False})
_C.TEST.PRECISE_BN.DATASET = 'Market1501'
_C.TEST.PRECISE_BN.NUM_ITER = 300

# ---------------------------------------------------------------------------- #
# Misc options
# ---------------------------------------------------------------------------- #
_C.OUTPUT_DIR = "logs/"

# Seed of every random number generator (data sampling, augmentation, meta-test domain choice, initialisation).
# A negative value draws a fresh seed per run, as FastReID does.
_C.SEED = -1

# Kept for config compatibility with FastReID; MindSpore chooses its kernels itself.
_C.CUDNN_BENCHMARK = False
