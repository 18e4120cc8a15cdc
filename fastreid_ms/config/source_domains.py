"""The source domains of a configuration and their class counts (ACL-DGReID's per-domain classifiers).

The number of source domains D is ``len(DATASETS.NAMES)`` (domain id = position in that tuple). The identities of
domain d (1-based) are counted by

* ``MODEL.HEADS.NUM_CLASSES_PER_DOMAIN`` - a list of D counts, any D >= 1; or
* ``MODEL.HEADS.NUM_CLASSES1/2/3`` - the released reference's keys, for exactly three domains.

:func:`domain_class_counts` resolves the two into one tuple: the list when it is given (the three reference keys
must then be 0 or equal to it), else the three reference keys when D == 3, else D zeros (an evaluation-only build,
or a configuration the trainer still has to auto-fill from the training set, :func:`fill_domain_class_counts`).
Every inconsistency is one ``ValueError`` naming the keys.
"""
from typing import Sequence, Tuple

__all__ = ["LEGACY_CLASS_KEYS", "num_source_domains", "domain_class_counts", "fill_domain_class_counts"]

# The reference's class-count keys, one per domain of its three-domain configuration.
LEGACY_CLASS_KEYS = ("NUM_CLASSES1", "NUM_CLASSES2", "NUM_CLASSES3")


def num_source_domains(cfg) -> int:
    """D = ``len(DATASETS.NAMES)``; a ValueError when it is empty."""
    names = tuple(cfg.DATASETS.NAMES)
    if not names:
        raise ValueError("DATASETS.NAMES is empty; name at least one source domain, e.g. ('Market1501',)")
    return len(names)


def _legacy_counts(heads) -> Tuple[int, ...]:
    return tuple(int(heads[key]) for key in LEGACY_CLASS_KEYS)


def domain_class_counts(cfg) -> Tuple[int, ...]:
    """The class count of every source domain, in ``DATASETS.NAMES`` order (see the module docstring)."""
    heads = cfg.MODEL.HEADS
    num_domains = num_source_domains(cfg)
    per_domain = tuple(int(c) for c in heads.NUM_CLASSES_PER_DOMAIN)
    legacy = _legacy_counts(heads)
    if any(c < 0 for c in per_domain + legacy):
        raise ValueError(f"class counts must be >= 0, got MODEL.HEADS.NUM_CLASSES_PER_DOMAIN={list(per_domain)} "
                         f"and MODEL.HEADS.NUM_CLASSES1/2/3={legacy}")
    if per_domain:
        if len(per_domain) != num_domains:
            raise ValueError(f"MODEL.HEADS.NUM_CLASSES_PER_DOMAIN={list(per_domain)} has {len(per_domain)} counts "
                             f"for the {num_domains} source domains of DATASETS.NAMES={tuple(cfg.DATASETS.NAMES)}")
        if any(legacy) and legacy != per_domain:
            raise ValueError(f"MODEL.HEADS.NUM_CLASSES1/2/3={legacy} disagree with MODEL.HEADS."
                             f"NUM_CLASSES_PER_DOMAIN={list(per_domain)}; set one of them (the other to 0 / [])")
        return per_domain
    if num_domains == 3:
        return legacy
    if any(legacy):
        raise ValueError(f"MODEL.HEADS.NUM_CLASSES1/2/3={legacy} describe 3 source domains but DATASETS.NAMES="
                         f"{tuple(cfg.DATASETS.NAMES)} has {num_domains}; give MODEL.HEADS.NUM_CLASSES_PER_DOMAIN "
                         f"{num_domains} counts instead (or leave every count 0 to fill them from the training set)")
    return (0,) * num_domains


def fill_domain_class_counts(heads, counts: Sequence[int], num_domains: int) -> None:
    """Fill the zero class counts of ``heads`` (``cfg.MODEL.HEADS``, defrosted) with ``counts`` (ids per domain
    of the training set): ``NUM_CLASSES1/2/3`` for three domains configured with them, else
    ``NUM_CLASSES_PER_DOMAIN`` (written in full when empty, entry by entry where 0 otherwise)."""
    counts = [int(c) for c in counts]
    if len(counts) != num_domains:
        raise ValueError(f"the training set has {len(counts)} source domains, DATASETS.NAMES {num_domains}")
    per_domain = [int(c) for c in heads.NUM_CLASSES_PER_DOMAIN]
    if num_domains == 3 and not per_domain:
        for key, count in zip(LEGACY_CLASS_KEYS, counts):
            if heads[key] == 0:
                heads[key] = count
        return
    if not per_domain:
        per_domain = [0] * num_domains
    if len(per_domain) == num_domains:
        heads.NUM_CLASSES_PER_DOMAIN = [c if c else count for c, count in zip(per_domain, counts)]
