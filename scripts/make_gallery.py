"""Render the README gallery from package-shipped photos (scikit-image) and the bundled models.

    python scripts/make_gallery.py   # writes docs/gallery/gallery.jpg and docs/gallery/demo.jpg
"""

from __future__ import annotations

from pathlib import Path

import skimage.data
from PIL import Image, ImageDraw

from fast_style.images import resize_longer_side, save_image
from fast_style.models import bundled_models
from fast_style.stylize import load_stylizer

PHOTOS = ("astronaut", "coffee", "chelsea")
CELL = 320
OUTPUT = Path("docs/gallery")


def label(image: Image.Image, text: str) -> Image.Image:
    """The image with a caption strip under it."""
    framed = Image.new("RGB", (image.width, image.height + 22), "white")
    framed.paste(image, (0, 0))
    ImageDraw.Draw(framed).text((6, image.height + 5), text, fill="black")
    return framed


def main() -> None:
    photos = {name: resize_longer_side(Image.fromarray(getattr(skimage.data, name)()), CELL) for name in PHOTOS}
    # One row per photo, one column per single-painting model (an adain model has no painting of its own).
    models = [name for name in bundled_models() if not load_stylizer(name, device="cpu").kind.takes_style]
    rows = []
    for name, photo in photos.items():
        cells = [label(photo, f"scikit-image '{name}'")]
        for model in models:
            cells.append(label(load_stylizer(model, device="cpu").stylize(photo), model))
        rows.append(cells)
    width = max(sum(c.width for c in row) for row in rows)
    height = sum(max(c.height for c in row) for row in rows)
    gallery = Image.new("RGB", (width, height), "white")
    y = 0
    for row in rows:
        x = 0
        for cell in row:
            gallery.paste(cell, (x, y))
            x += cell.width
        y += max(c.height for c in row)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    save_image(gallery, OUTPUT / "gallery.jpg", quality=88)
    print(f"wrote {OUTPUT / 'gallery.jpg'} ({width}x{height})")


if __name__ == "__main__":
    main()
