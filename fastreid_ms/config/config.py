"""yacs-based configuration: ``_BASE_`` inheritance and errors that name the bad key and its closest known keys."""
import difflib
import os
from typing import Any, Dict, List

import yaml
from yacs.config import CfgNode as _CfgNode

BASE_KEY = "_BASE_"


# Keys of earlier fastreid_ms versions -> their current names (a clear error instead of "unknown key").
RENAMED_KEYS = {"SOLVER.EMULATE_DP_REPLICAS": "SOLVER.DP_REPLICAS"}

class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file or key and what was expected."""


def _flat_keys(node: Any, prefix: str = "") -> List[str]:
    keys = []
    for k, v in node.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, dict):
            keys.extend(_flat_keys(v, full + "."))
    return keys


class CfgNode(_CfgNode):
    """FastReID's CfgNode: ``merge_from_file`` follows ``_BASE_`` (relative to the child file, ``~`` expanded);
    unknown keys and mistyped values raise :class:`ConfigError` naming the key, the closest known keys and the
    expected type."""

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> Dict[str, Any]:
        """Load a YAML file and recursively merge the files named by its ``_BASE_`` key below it."""
        if not os.path.isfile(filename):
            raise ConfigError(f"config file not found: {filename!r}")
        with open(filename, "r") as f:
            try:
                cfg = yaml.safe_load(f)
            except yaml.YAMLError as e:
                if not allow_unsafe:
                    raise ConfigError(f"config file {filename!r} is not valid YAML: {e}") from None
                f.seek(0)
                cfg = yaml.unsafe_load(f)
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"config file {filename!r} must hold a mapping of keys, got {type(cfg).__name__}")

        def merge_a_into_b(a: Dict[str, Any], b: Dict[str, Any]) -> None:
            for k, v in a.items():
                if isinstance(v, dict) and k in b and isinstance(b[k], dict):
                    merge_a_into_b(v, b[k])
                else:
                    b[k] = v

        if BASE_KEY in cfg:
            base_cfg_file = os.path.expanduser(cfg[BASE_KEY])
            if not base_cfg_file.startswith(("/", "http://", "https://")):
                base_cfg_file = os.path.join(os.path.dirname(filename), base_cfg_file)
            base_cfg = cls.load_yaml_with_base(base_cfg_file, allow_unsafe=allow_unsafe)
            del cfg[BASE_KEY]
            merge_a_into_b(cfg, base_cfg)
            return base_cfg
        return cfg

    def _unknown_key_error(self, key: str, source: str) -> ConfigError:
        if key in RENAMED_KEYS:
            return ConfigError(f"config key {key!r} in {source} is now {RENAMED_KEYS[key]!r}")
        known = _flat_keys(self)
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
        if not close:
            close = difflib.get_close_matches(key.split(".")[-1], [k.split(".")[-1] for k in known], n=3)
            close = [k for k in known if k.split(".")[-1] in close][:3]
        hint = f"; closest known keys: {', '.join(close)}" if close else ""
        return ConfigError(f"unknown config key {key!r} in {source}{hint}")

    def _check_keys(self, cfg_dict: Dict[str, Any], source: str, prefix: str = "") -> None:
        for k, v in cfg_dict.items():
            full = f"{prefix}{k}"
            node = self
            for part in full.split("."):
                if not isinstance(node, dict) or part not in node:
                    raise self._unknown_key_error(full, source)
                node = node[part]
            if isinstance(v, dict) and isinstance(node, dict):
                self._check_keys(v, source, full + ".")

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML config file (with its ``_BASE_`` chain) into this config."""
        loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        self._check_keys(loaded, f"config file {cfg_filename!r}")
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except ValueError as e:
            raise ConfigError(f"bad value in config file {cfg_filename!r}: {e}") from None

    def merge_from_list(self, cfg_list: List[Any]) -> None:
        """Merge ``KEY VALUE`` pairs (e.g. from the command line); ``_BASE_`` is not allowed here."""
        if len(cfg_list) % 2 != 0:
            raise ConfigError(f"command-line overrides must come as KEY VALUE pairs, got an odd count: {cfg_list}")
        for key in cfg_list[0::2]:
            if key == BASE_KEY:
                raise ConfigError("_BASE_ cannot be given on the command line")
            node = self
            for part in str(key).split("."):
                if not isinstance(node, dict) or part not in node:
                    raise self._unknown_key_error(str(key), "the command line")
                node = node[part]
        try:
            super().merge_from_list(cfg_list)
        except ValueError as e:
            raise ConfigError(f"bad value on the command line: {e}") from None


def get_cfg() -> CfgNode:
    """Return a fresh copy of the default config; ``DATASETS.ROOT`` comes from env ``FASTREID_DATASETS`` if set."""
    from .defaults import _C

    cfg = _C.clone()
    cfg.DATASETS.ROOT = os.environ.get("FASTREID_DATASETS", cfg.DATASETS.ROOT)
    return cfg


def configurable(init_func):
    """Decorate ``__init__`` so that ``Cls(cfg, ...)`` calls ``Cls.from_config(cfg, ...)`` for its keyword
    arguments, while ``Cls(**explicit_kwargs)`` still works (detectron2/FastReID's ``@configurable``)."""
    import functools

    @functools.wraps(init_func)
    def wrapped(self, *args, **kwargs):
        if args and isinstance(args[0], _CfgNode):
            from_config = getattr(type(self), "from_config", None)
            if from_config is None:
                raise AttributeError(f"{type(self).__name__} uses @configurable but has no from_config classmethod")
            init_func(self, **from_config(*args, **kwargs))
        elif "cfg" in kwargs and isinstance(kwargs["cfg"], _CfgNode):
            cfg = kwargs.pop("cfg")
            init_func(self, **type(self).from_config(cfg, *args, **kwargs))
        else:
            init_func(self, *args, **kwargs)

    return wrapped
