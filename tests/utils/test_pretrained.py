"""Pretrained weight files: the SHA-256 prefix in a published file's name, and converted backbone checkpoints."""
import hashlib

import pytest

from fastreid_ms.utils.pretrained import check_hash_prefix, read_pretrained


def _named_by_hash(tmp_path, stem: str, content: bytes, digits: int = 8, wrong: bool = False):
    digest = hashlib.sha256(content).hexdigest()[:digits]
    if wrong:
        digest = format(int(digest, 16) ^ 1, f"0{digits}x")
    path = tmp_path / f"{stem}-{digest}.pth"
    path.write_bytes(content)
    return str(path), digest


def test_hash_prefix_in_the_name_is_checked(tmp_path):
    path, digest = _named_by_hash(tmp_path, "resnet50_ibn_a", b"weights")
    assert check_hash_prefix(path).startswith(digest)
    bad, expected = _named_by_hash(tmp_path, "resnet50_ibn_b", b"weights", wrong=True)
    with pytest.raises(ValueError, match=f"resnet50_ibn_b-{expected}.pth: SHA-256 .* does not match the {expected}"):
        check_hash_prefix(bad)


def test_names_without_a_hash_are_not_checked(tmp_path):
    for name in ("r50-ibn.pth", "model-a.pth", "model-abc12.pth", "resnet50.pth"):
        (tmp_path / name).write_bytes(b"x")
        assert check_hash_prefix(str(tmp_path / name)) is None


def test_corrupt_download_is_refused_before_reading(tmp_path):
    bad, _ = _named_by_hash(tmp_path, "resnet50_ibn_a", b"truncated", wrong=True)
    with pytest.raises(ValueError, match="download the file again"):
        read_pretrained(bad)
    with pytest.raises(FileNotFoundError, match="MODEL.BACKBONE.PRETRAIN_PATH .*missing.pth.* does not exist"):
        read_pretrained(str(tmp_path / "missing.pth"))
