"""Rank-list images and metric curves drawn with Pillow (FastReID's ``utils/visualizer.py`` and
``demo/visualize_result.py``, without matplotlib or OpenCV).

A rank list is one PNG per query: the query image, then its top-k gallery images in ranked order (same-pid
same-camera images removed, as in the evaluation), true matches framed green and false ones red, each captioned
with its distance and camera; optionally a second row with the query's true matches.
"""
import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["MATCH_COLOR", "MISMATCH_COLOR", "load_image", "render_rank_list", "save_rank_lists", "draw_curve",
           "save_cmc_curve", "save_roc_curve", "save_weight_grid"]

logger = logging.getLogger(__name__)

MATCH_COLOR = (0, 170, 0)
MISMATCH_COLOR = (220, 0, 0)
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)
_CAPTION_H = 28
_GAP = 8


def load_image(source, size: Tuple[int, int]) -> Image.Image:
    """An RGB image of ``size`` (width, height) from a file path, a PIL image, or an array (H, W, 3) / (3, H, W)
    with values 0..255."""
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"image file not found: {source}")
        with Image.open(source) as opened:
            img = opened.convert("RGB")
    else:
        arr = np.asarray(source)
        if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
            arr = arr.transpose(1, 2, 0)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"an image array must be (H, W, 3) or (3, H, W), got shape {arr.shape}")
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img.convert("RGB").resize(size, Image.BILINEAR)


def _cell(image: Image.Image, caption: str, color: Optional[Tuple[int, int, int]], border: int, font
          ) -> Image.Image:
    w, h = image.size
    cell = Image.new("RGB", (w, h + _CAPTION_H), _BACKGROUND)
    cell.paste(image, (0, 0))
    draw = ImageDraw.Draw(cell)
    if color is not None:
        for t in range(border):
            draw.rectangle([t, t, w - 1 - t, h - 1 - t], outline=color)
    for i, line in enumerate(caption.split("\n")[:2]):
        draw.text((2, h + 2 + 12 * i), line, fill=_TEXT, font=font)
    return cell


def render_rank_list(query, gallery: Sequence, matches: Sequence[bool], *, query_caption: str = "",
                     captions: Optional[Sequence[str]] = None, label_images: Optional[Sequence] = None,
                     label_captions: Optional[Sequence[str]] = None, cell_size: Tuple[int, int] = (128, 256),
                     border: int = 4) -> Image.Image:
    """One rank list: the query, a gap, then the gallery images framed green (``matches`` True) or red; with
    ``label_images`` a second row shows them (the query's true matches), framed green. Images are anything
    :func:`load_image` takes; captions may hold two lines."""
    if len(matches) != len(gallery):
        raise ValueError(f"{len(gallery)} gallery images but {len(matches)} match flags")
    captions = list(captions) if captions is not None else [""] * len(gallery)
    font = ImageFont.load_default()
    w, h = cell_size
    cols = 1 + max(len(gallery), len(label_images or []))
    rows = 2 if label_images else 1
    canvas = Image.new("RGB", (cols * w + (cols - 1) * _GAP + _GAP, rows * (h + _CAPTION_H + _GAP)), _BACKGROUND)
    canvas.paste(_cell(load_image(query, cell_size), query_caption, None, border, font), (0, 0))
    x0 = w + 2 * _GAP
    for i, (img, ok) in enumerate(zip(gallery, matches)):
        color = MATCH_COLOR if ok else MISMATCH_COLOR
        canvas.paste(_cell(load_image(img, cell_size), captions[i], color, border, font), (x0 + i * (w + _GAP), 0))
    if label_images:
        label_captions = list(label_captions) if label_captions is not None else [""] * len(label_images)
        y = h + _CAPTION_H + _GAP
        ImageDraw.Draw(canvas).text((2, y + 2), "true\nmatches", fill=_TEXT, font=font)
        for i, img in enumerate(label_images):
            canvas.paste(_cell(load_image(img, cell_size), label_captions[i], MATCH_COLOR, border, font),
                         (x0 + i * (w + _GAP), y))
    return canvas


def _short(path) -> str:
    return os.path.basename(str(path)) if isinstance(path, (str, os.PathLike)) else ""


def save_rank_lists(output_dir: str, dist, ap: np.ndarray, q_images: Sequence, g_images: Sequence, q_pids, g_pids,
                    q_camids, g_camids, *, num_vis: int = 100, rank_sort: str = "ascending",
                    label_sort: str = "ascending", max_rank: int = 10, vis_label: bool = False,
                    cell_size: Tuple[int, int] = (128, 256)) -> List[Tuple[int, str]]:
    """Save the rank lists of ``num_vis`` queries as PNGs in ``output_dir``; returns ``[(query index, file)]``.

    ``dist`` is the (query, gallery) distance matrix (array or ``DistanceRows``; only the rows drawn are read),
    ``ap`` the AP of each query (NaN for queries without a true match, which are not drawn). Queries are taken in
    order of AP: ``rank_sort`` "ascending" = lowest AP first (FastReID's default), "descending" = highest first.
    The gallery is ranked as in the evaluation (argsort, same-pid-same-camera removed). With ``vis_label`` a second
    row shows the query's true matches; ``label_sort`` "ascending" = least similar first (FastReID's order),
    "descending" = most similar first.
    """
    from ..evaluation.rank import kept_ranking
    from .compute_dist import ArrayDistance, DistanceRows

    for name, value in (("rank_sort", rank_sort), ("label_sort", label_sort)):
        if value not in ("ascending", "descending"):
            raise ValueError(f"{name} must be 'ascending' or 'descending', got {value!r}")
    dist = dist if isinstance(dist, DistanceRows) else ArrayDistance(dist)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    ap = np.asarray(ap, dtype=np.float64)
    if not (len(q_images) == q_pids.size == ap.size == dist.shape[0] and len(g_images) == g_pids.size ==
            dist.shape[1]):
        raise ValueError(f"sizes disagree: distances {dist.shape}, {len(q_images)} query images, {q_pids.size} "
                         f"query ids, {ap.size} APs, {len(g_images)} gallery images, {g_pids.size} gallery ids")
    drawable = np.flatnonzero(np.isfinite(ap))
    order = drawable[np.argsort(ap[drawable], kind="stable")]
    if rank_sort == "descending":
        order = order[::-1]
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for cnt, qi in enumerate(order[:num_vis].tolist()):
        row = dist.rows(qi, qi + 1)[0]
        same = g_pids == q_pids[qi]
        same_cam = g_camids == q_camids[qi]
        ranked = kept_ranking(row, np.flatnonzero(same & same_cam))[:max_rank]
        matches = same[ranked]
        captions = [f"{row[g]:.3f}/{'true' if m else 'false'}\ncam{g_camids[g]} {_short(g_images[g])}"
                    for g, m in zip(ranked.tolist(), matches.tolist())]
        label_images = label_captions = None
        if vis_label:
            good = np.flatnonzero(same & ~same_cam)
            good = good[np.argsort(row[good], kind="stable")]
            if label_sort == "ascending":
                good = good[::-1]
            good = good[:max_rank]
            label_images = [g_images[g] for g in good.tolist()]
            label_captions = [f"{row[g]:.3f}\ncam{g_camids[g]}" for g in good.tolist()]
        image = render_rank_list(q_images[qi], [g_images[g] for g in ranked.tolist()], matches.tolist(),
                                 query_caption=f"query {qi} AP:{ap[qi]:.2f}\ncam{q_camids[qi]} "
                                               f"{_short(q_images[qi])}",
                                 captions=captions, label_images=label_images, label_captions=label_captions,
                                 cell_size=cell_size)
        path = os.path.join(output_dir, f"rank_{cnt:04d}_query{qi}.png")
        image.save(path)
        written.append((qi, path))
    logger.info("Saved %d rank lists to %s", len(written), output_dir)
    return written


def _nice_ticks(lo: float, hi: float, count: int) -> np.ndarray:
    """Tick positions at multiples of 1, 2 or 5 x 10^k, about ``count`` of them, within [lo, hi]."""
    raw = (hi - lo) / max(1, count)
    base = 10.0 ** np.floor(np.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    return np.arange(np.ceil(lo / step) * step, hi + step * 1e-9, step)


def draw_curve(xs: np.ndarray, ys: np.ndarray, *, title: str, x_label: str, y_label: str,
               x_range: Tuple[float, float], y_range: Tuple[float, float], log_x: bool = False,
               size: Tuple[int, int] = (640, 480), color=(31, 119, 180), ticks: int = 5) -> Image.Image:
    """A line plot with axes, ticks, grid and labels on a white canvas."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if xs.shape != ys.shape or xs.size == 0:
        raise ValueError(f"draw_curve needs equally long non-empty x and y, got {xs.shape} and {ys.shape}")
    tx = np.log10 if log_x else (lambda v: v)
    (x_lo, x_hi), (y_lo, y_hi) = (tx(x_range[0]), tx(x_range[1])), y_range
    if not (x_hi > x_lo and y_hi > y_lo):
        raise ValueError(f"empty plot ranges {x_range} / {y_range}")
    w, h = size
    left, right, top, bottom = 70, 20, 40, 55
    img = Image.new("RGB", size, _BACKGROUND)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()

    def px(x, y):
        u = (np.clip(tx(x), x_lo, x_hi) - x_lo) / (x_hi - x_lo)
        v = (np.clip(y, y_lo, y_hi) - y_lo) / (y_hi - y_lo)
        return left + u * (w - left - right), h - bottom - v * (h - top - bottom)

    x_ticks = np.arange(np.ceil(x_lo), np.floor(x_hi) + 1) if log_x else _nice_ticks(x_lo, x_hi, ticks)
    for fx in x_ticks:
        gx, _ = px(10 ** fx if log_x else fx, y_lo)
        draw.line([(gx, top), (gx, h - bottom)], fill=(225, 225, 225))
        draw.text((gx - 12, h - bottom + 6), f"1e{fx:.0f}" if log_x else f"{fx:g}", fill=_TEXT, font=font)
    for fy in _nice_ticks(y_lo, y_hi, ticks):
        _, gy = px(10 ** x_lo if log_x else x_lo, fy)
        draw.line([(left, gy), (w - right, gy)], fill=(225, 225, 225))
        draw.text((8, gy - 6), f"{fy:g}", fill=_TEXT, font=font)
    draw.rectangle([left, top, w - right, h - bottom], outline=_TEXT)
    points = [px(x, y) for x, y in zip(xs, ys) if not log_x or x > 0]
    if len(points) > 1:
        draw.line(points, fill=color, width=2)
    for p in points if len(points) <= 60 else []:
        draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=color)
    draw.text((left, 12), title, fill=_TEXT, font=font)
    draw.text(((left + w - right) / 2 - 3 * len(x_label), h - 22), x_label, fill=_TEXT, font=font)
    draw.text((8, 12 + 12), y_label, fill=_TEXT, font=font)
    return img


def save_cmc_curve(cmc: np.ndarray, path: str, title: str = "CMC curve") -> str:
    """Plot the CMC (fractions, rank 1 first) in percent against the rank and save it as PNG."""
    cmc = np.asarray(cmc, dtype=np.float64)
    ranks = np.arange(1, cmc.size + 1)
    y_lo = float(np.floor(cmc.min() * 10) * 10) if cmc.size else 0.0
    img = draw_curve(ranks, cmc * 100, title=f"{title} (Rank-1 {cmc[0] * 100:.2f}%)", x_label="rank",
                     y_label="matching rate (%)", x_range=(1, max(2, cmc.size)), y_range=(min(y_lo, 99.0), 100.0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)
    return path


def save_roc_curve(fpr: np.ndarray, tpr: np.ndarray, path: str, title: str = "ROC") -> str:
    """Plot TPR (percent) against FPR on a log axis (from 1e-5) and save it as PNG."""
    img = draw_curve(np.asarray(fpr), np.asarray(tpr) * 100, title=title, x_label="false positive rate",
                     y_label="true positive rate (%)", x_range=(1e-5, 1.0), y_range=(0.0, 100.0), log_x=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)
    return path


def save_weight_grid(values: np.ndarray, row_labels: Sequence[str], column_groups: Sequence[str],
                     column_labels: Sequence[str], path: str, title: str) -> str:
    """Save a grid of weights in [0, 1] as PNG: one row per ``row_labels`` entry, the columns in groups (one group
    per ``column_groups`` entry, ``column_labels`` within each), every cell shaded by its value and captioned with
    it. ``values`` has shape (rows, groups, columns per group)."""
    values = np.asarray(values, dtype=np.float64)
    shape = (len(row_labels), len(column_groups), len(column_labels))
    if values.shape != shape:
        raise ValueError(f"save_weight_grid: values of shape {values.shape}, labels for {shape}")
    font = ImageFont.load_default()
    cell_w, cell_h, label_w, top = 44, 26, 8 + 6 * max(len(r) for r in row_labels), 64
    group_w = cell_w * shape[2] + _GAP
    img = Image.new("RGB", (label_w + group_w * shape[1] + _GAP, top + cell_h * shape[0] + _GAP), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    draw.text((_GAP, 10), title, fill=_TEXT, font=font)
    for g, group in enumerate(column_groups):
        x0 = label_w + g * group_w
        draw.text((x0, 30), group, fill=_TEXT, font=font)
        for c, label in enumerate(column_labels):
            draw.text((x0 + c * cell_w + 4, 46), label, fill=_TEXT, font=font)
    for r, row in enumerate(row_labels):
        y0 = top + r * cell_h
        draw.text((_GAP, y0 + 8), row, fill=_TEXT, font=font)
        for g in range(shape[1]):
            for c in range(shape[2]):
                value = float(np.clip(values[r, g, c], 0.0, 1.0))
                shade = int(round(255 * (1 - value)))
                x0 = label_w + g * group_w + c * cell_w
                draw.rectangle([x0, y0, x0 + cell_w - 2, y0 + cell_h - 2], fill=(shade, shade, 255), outline=_TEXT)
                draw.text((x0 + 6, y0 + 8), f"{values[r, g, c]:.3f}", fill=_TEXT if value < 0.6 else _BACKGROUND,
                          font=font)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)
    return path
