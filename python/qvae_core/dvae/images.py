"""PNG grids of images (generated digits, reconstructions) with pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["save_grid"]

_GAP = 1  # pixels between tiles


def save_grid(pixels, image_shape, path, *, columns: int = 10, scale: int = 2, row_labels=None) -> Path:
    """Write (N, H*W) values in [0, 1] as a grey-level grid of N tiles, `columns` per row, each pixel
    `scale` x `scale`; returns the path. Values are clipped to [0, 1]. row_labels: texts written left
    of the rows, in turn (e.g. ["data", "reconstruction"] for rows that alternate)."""
    from PIL import Image

    pixels = np.clip(np.asarray(pixels, dtype=np.float64), 0.0, 1.0)
    h, w = image_shape
    if pixels.ndim != 2 or pixels.shape[1] != h * w or pixels.shape[0] == 0:
        raise ValueError(f"pixels: expected shape (N >= 1, {h * w}), got {pixels.shape}")
    columns = min(columns, pixels.shape[0])
    rows = -(-pixels.shape[0] // columns)
    grid = np.zeros((rows * (h + _GAP) - _GAP, columns * (w + _GAP) - _GAP))
    for k, tile in enumerate(pixels.reshape(-1, h, w)):
        r, c = divmod(k, columns)
        grid[r * (h + _GAP) : r * (h + _GAP) + h, c * (w + _GAP) : c * (w + _GAP) + w] = tile
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    image = Image.fromarray(np.round(grid * 255).astype(np.uint8))  # 2-D uint8: grey levels
    if row_labels:
        image = _label_rows(image, [row_labels[r % len(row_labels)] for r in range(rows)], (h + _GAP) * scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _label_rows(image, labels, row_height: int):
    """`image` with a white margin on its left holding each row's label, in black."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(image)
    width = max(int(draw.textlength(label)) for label in labels) + 8
    labelled = Image.new("L", (image.width + width, image.height), 255)
    labelled.paste(image, (width, 0))
    draw = ImageDraw.Draw(labelled)
    for r, label in enumerate(labels):
        draw.text((4, r * row_height + row_height // 2), label, fill=0, anchor="lm")
    return labelled
