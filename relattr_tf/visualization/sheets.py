"""Contact sheets: captioned tiles in rows, saved as PNG and written to TensorBoard.

Images are float RGB in [0, 1] or uint8; tiles are enlarged with nearest-neighbour sampling so
the pixels a model saw stay visible. Boxes are [ymin, xmin, ymax, xmax] in [0, 1].
"""
import functools
import os

import matplotlib
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

TILE = 128
PAD = 4
CAPTION = 13
BACKGROUND = (255, 255, 255)
RED, GREEN = (230, 30, 30), (40, 200, 60)


def to_uint8(image):
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def heat_overlay(image, heat, alpha=0.6, colormap="inferno"):
    """The image with a heat map (H', W', any scale >= 0) over it: the map is scaled to its
    maximum, resized bilinearly to the image and coloured; float [0, 1]."""
    image = np.asarray(to_uint8(image), np.float32) / 255.0
    heat = np.asarray(heat, np.float32)
    if heat.shape != image.shape[:2]:
        resized = Image.fromarray(heat).resize(image.shape[1::-1], Image.BILINEAR)
        heat = np.asarray(resized, np.float32)
    heat = heat / max(float(heat.max()), 1e-12)
    coloured = matplotlib.colormaps[colormap](heat)[..., :3]
    return (1 - alpha) * image + alpha * coloured


@functools.lru_cache(maxsize=1)  # read once, not for every tile
def _font():
    try:
        return ImageFont.load_default(size=CAPTION - 2)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def tile(image, caption="", boxes=(), size=TILE):
    """One image enlarged to `size` pixels high, with an optional caption line under it and
    outlined boxes [(box, colour)] on it; a PIL image."""
    pixels = to_uint8(image)
    width = int(round(size * pixels.shape[1] / pixels.shape[0]))
    picture = Image.fromarray(pixels).resize((width, size), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    for box, colour in boxes:
        ymin, ymax = sorted(float(v) * size for v in box[0::2])
        xmin, xmax = sorted(float(v) * width for v in box[1::2])
        # At least a pixel: a box clipped to an image edge may have no area left.
        draw.rectangle([xmin, ymin, max(xmin, xmax - 1), max(ymin, ymax - 1)], outline=colour,
                       width=2)
    text_width = int(_font().getlength(caption)) + 2 if caption else 0
    out = Image.new("RGB", (max(width, text_width), size + CAPTION), BACKGROUND)
    out.paste(picture, (0, 0))
    if caption:
        ImageDraw.Draw(out).text((1, size), caption, fill=(0, 0, 0), font=_font())
    return out


def sheet(rows, title="", row_labels=None):
    """Rows of tiles (a list of lists of PIL images) on one white sheet, with a title line and
    a label before each row; uint8 (H, W, 3)."""
    labels = list(row_labels or [""] * len(rows))
    label_width = 8 + max(int(_font().getlength(line)) for s in labels
                          for line in s.split("\n")) if any(labels) else 0
    width = max(label_width + max(sum(t.width + PAD for t in row) for row in rows) + PAD,
                int(_font().getlength(title)) + 2 * PAD)
    height_of = [max(t.height for t in row) for row in rows]
    top = CAPTION + 2 * PAD if title else PAD
    out = Image.new("RGB", (width, top + sum(h + PAD for h in height_of)), BACKGROUND)
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((PAD, PAD), title, fill=(0, 0, 0), font=_font())
    y = top
    for row, label, height in zip(rows, labels, height_of):
        if label:
            draw.text((PAD, y + height // 2 - CAPTION // 2), label, fill=(0, 0, 0), font=_font())
        x = label_width + PAD
        for t in row:
            out.paste(t, (x, y))
            x += t.width + PAD
        y += height + PAD
    return np.asarray(out)


def save(pixels, out_dir, name):
    """Writes <out_dir>/<name>.png; returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.png")
    Image.fromarray(pixels).save(path)
    return path


def to_tensorboard(log_dir, images, step=0):
    """Writes {tag: (uint8 sheet, description)} as image summaries under log_dir."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=step), tf.summary.record_if(True):
        for tag, (pixels, description) in images.items():
            tf.summary.image(tag, pixels[None], description=description)
    writer.flush()
