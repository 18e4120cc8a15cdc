"""Image reading (FastReID ``read_image``), the up-front file check and the unreadable-image pre-scan."""
import logging
import os
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)


class ImageReadError(OSError):
    """An image file is missing, unreadable or not a decodable image; the message names the file."""


def read_image(file_name: str) -> Image.Image:
    """Read an image as an RGB PIL image.

    Like FastReID's ``read_image``: EXIF orientation is applied (``ImageOps.exif_transpose``) and grayscale becomes
    3 channels. Unlike the reference (which keeps the file's mode), every mode is converted to RGB, so RGBA, palette,
    CMYK and 16-bit images become 3-channel as well instead of breaking the batch later.

    Raises:
        ImageReadError: naming ``file_name`` when it cannot be opened or decoded.
    """
    try:
        with Image.open(file_name) as f:
            image = f
            try:
                image = ImageOps.exif_transpose(f)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not make a readable image unreadable
                image = f
            image.load()
            if image.mode == "RGB":
                return image.copy() if image is f else image
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                return image.convert("RGBA").convert("RGB")
            if image.mode.startswith("I;16") or image.mode in ("I", "F"):
                array = np.asarray(image, dtype=np.float64)
                scale = 255.0 / 65535.0 if array.max(initial=0) > 255 else 1.0
                gray = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), "L")
                return gray.convert("RGB")
            return image.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"image file not found: {file_name}") from None
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - PIL raises many exception types for corrupt data
        raise ImageReadError(f"cannot read image {file_name}: {type(e).__name__}: {e}") from None


def filter_readable(items: Sequence[Tuple], what: str = "") -> List[Tuple]:
    """Return the items whose image (``item[0]``) decodes; log one warning line per dropped file.

    Used when ``DATALOADER.SKIP_UNREADABLE_IMAGES`` is on. Every image is fully decoded once, so this costs about
    as much as one pass of reading the dataset.
    """
    kept = []
    for item in items:
        try:
            read_image(item[0])
        except ImageReadError as e:
            logger.warning("skipping unreadable image%s: %s", f" in {what}" if what else "", e)
            continue
        kept.append(item)
    return kept


def check_image_files(items: Sequence[Tuple], what: str) -> None:
    """Fail before training or evaluation starts when an image file of ``items`` is missing, empty or not readable.

    Cheap (one ``stat`` and one access check per file, no decoding): a file that exists but does not decode is
    still found when it is read, by :func:`read_image`, whose error names it. Raises :class:`ImageReadError` naming
    ``what``, how many files are bad and the first of them."""
    bad = []
    for item in items:
        path = item[0]
        try:
            size = os.stat(path).st_size
        except OSError:
            bad.append(f"{path} (missing)")
            continue
        if size == 0:
            bad.append(f"{path} (empty)")
        elif not os.access(path, os.R_OK):
            bad.append(f"{path} (not readable)")
    if bad:
        shown = "; ".join(bad[:3]) + ("; ..." if len(bad) > 3 else "")
        raise ImageReadError(f"{what}: {len(bad)} of {len(items)} image files are missing, empty or unreadable: "
                             f"{shown} (fix or remove them, or set DATALOADER.SKIP_UNREADABLE_IMAGES True to skip "
                             f"images that do not decode)")
