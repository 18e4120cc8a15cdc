"""Class counts per source domain: MODEL.HEADS.NUM_CLASSES_PER_DOMAIN for any number of domains, NUM_CLASSES1/2/3
for the reference's three, their auto-fill from the training set and the one-line errors naming the keys."""
import pytest

from fastreid_ms.config import domain_class_counts, fill_domain_class_counts, get_cfg, num_source_domains

FIVE = ("Market1501", "DukeMTMC", "CUHK02", "CUHK03", "cuhkSYSU")
THREE = ("cuhkSYSU", "Market1501", "MSMT17")


def cfg_with(names, per_domain=(), legacy=(0, 0, 0)):
    cfg = get_cfg()
    cfg.DATASETS.NAMES = tuple(names)
    cfg.MODEL.HEADS.NUM_CLASSES_PER_DOMAIN = list(per_domain)
    cfg.MODEL.HEADS.NUM_CLASSES1, cfg.MODEL.HEADS.NUM_CLASSES2, cfg.MODEL.HEADS.NUM_CLASSES3 = legacy
    return cfg


def test_three_domains_use_the_reference_keys_and_any_number_the_list():
    assert get_cfg().MODEL.HEADS.NUM_CLASSES_PER_DOMAIN == []
    assert domain_class_counts(cfg_with(THREE, legacy=(11934, 751, 1041))) == (11934, 751, 1041)
    assert domain_class_counts(cfg_with(THREE, per_domain=(4, 5, 6))) == (4, 5, 6)
    assert domain_class_counts(cfg_with(THREE, per_domain=(4, 5, 6), legacy=(4, 5, 6))) == (4, 5, 6)
    assert domain_class_counts(cfg_with(FIVE, per_domain=(1, 2, 3, 4, 5))) == (1, 2, 3, 4, 5)
    assert domain_class_counts(cfg_with(FIVE)) == (0,) * 5          # eval-only build / still to be auto-filled
    assert domain_class_counts(cfg_with(("Market1501",), per_domain=(7,))) == (7,)
    assert num_source_domains(cfg_with(FIVE)) == 5


@pytest.mark.parametrize("names,per_domain,legacy,message", [
    (FIVE, (), (3, 4, 5), "MODEL.HEADS.NUM_CLASSES1/2/3=(3, 4, 5) describe 3 source domains but DATASETS.NAMES="),
    (FIVE, (1, 2, 3), (0, 0, 0), "MODEL.HEADS.NUM_CLASSES_PER_DOMAIN=[1, 2, 3] has 3 counts for the 5 source domains"),
    (THREE, (1, 2, 3), (1, 2, 4), "MODEL.HEADS.NUM_CLASSES1/2/3=(1, 2, 4) disagree with MODEL.HEADS."
                                  "NUM_CLASSES_PER_DOMAIN=[1, 2, 3]"),
    (("Market1501", "DukeMTMC"), (4, -1), (0, 0, 0), "class counts must be >= 0"),
    ((), (), (0, 0, 0), "DATASETS.NAMES is empty"),
])
def test_mismatches_are_one_line_errors_naming_the_keys(names, per_domain, legacy, message):
    with pytest.raises(ValueError) as info:
        domain_class_counts(cfg_with(names, per_domain, legacy))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_fill_writes_the_reference_keys_for_three_domains_else_the_list():
    heads = cfg_with(THREE, legacy=(9, 0, 0)).MODEL.HEADS
    fill_domain_class_counts(heads, [4, 5, 6], 3)
    assert (heads.NUM_CLASSES1, heads.NUM_CLASSES2, heads.NUM_CLASSES3) == (9, 5, 6)   # set values are kept
    assert heads.NUM_CLASSES_PER_DOMAIN == []
    cfg = cfg_with(FIVE)
    fill_domain_class_counts(cfg.MODEL.HEADS, [1, 2, 3, 4, 5], 5)
    assert cfg.MODEL.HEADS.NUM_CLASSES_PER_DOMAIN == [1, 2, 3, 4, 5] and cfg.MODEL.HEADS.NUM_CLASSES1 == 0
    assert domain_class_counts(cfg) == (1, 2, 3, 4, 5)
    cfg = cfg_with(("Market1501", "DukeMTMC"), per_domain=(8, 0))
    fill_domain_class_counts(cfg.MODEL.HEADS, [3, 4], 2)
    assert domain_class_counts(cfg) == (8, 4)
    cfg = cfg_with(THREE, per_domain=(0, 7, 0))
    fill_domain_class_counts(cfg.MODEL.HEADS, [4, 5, 6], 3)
    assert domain_class_counts(cfg) == (4, 7, 6)
    with pytest.raises(ValueError, match="the training set has 2 source domains, DATASETS.NAMES 5"):
        fill_domain_class_counts(cfg_with(FIVE).MODEL.HEADS, [1, 2], 5)


def test_the_list_merges_from_the_command_line():
    cfg = cfg_with(FIVE)
    cfg.merge_from_list(["MODEL.HEADS.NUM_CLASSES_PER_DOMAIN", "[3, 4, 5, 6, 7]"])
    assert domain_class_counts(cfg) == (3, 4, 5, 6, 7)
