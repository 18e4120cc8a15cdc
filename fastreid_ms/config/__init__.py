from .config import CfgNode, ConfigError, configurable, get_cfg
from .source_domains import domain_class_counts, fill_domain_class_counts, num_source_domains

__all__ = ["CfgNode", "ConfigError", "configurable", "get_cfg", "domain_class_counts", "fill_domain_class_counts",
           "num_source_domains"]
