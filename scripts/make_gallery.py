"""Render the README gallery from package-shipped photos (scikit-image) and the bundled models.

    python scripts/make_gallery.py   # writes docs/gallery/gallery.jpg and docs/gallery/demo.jpg
"""

from __future__ import annotations

from pathlib import Path

import skimage.data
from PIL import Image

from fast_style.images import resize_longer_side, save_image
from fast_style.models import DEFAULT_MODEL, bundled_models
from fast_style.pictures import caption, hstack, vstack
from fast_style.stylize import load_stylizer

PHOTOS = ("astronaut", "coffee", "chelsea")
CELL = 320
DEMO_PHOTO = "astronaut"  # what `fast-style demo` stylizes by default; the README shows its picture
DEMO_SIDE = 512
OUTPUT = Path("docs/gallery")


def main() -> None:
    photos = {name: resize_longer_side(Image.fromarray(getattr(skimage.data, name)()), CELL) for name in PHOTOS}
    # One row per photo, one column per single-painting model (an adain model has no painting of its own).
    models = [name for name in bundled_models() if not (stylizer := load_stylizer(name, device="cpu")).kind.takes_style
              and not stylizer.styles]  # one painting each
    rows = []
    for name, photo in photos.items():
        cells = [caption(photo, f"scikit-image '{name}'")]
        for model in models:
            cells.append(caption(load_stylizer(model, device="cpu").stylize(photo), model))
        rows.append(hstack(cells))
    gallery = vstack(rows)
    width, height = gallery.size
    OUTPUT.mkdir(parents=True, exist_ok=True)
    save_image(gallery, OUTPUT / "gallery.jpg", quality=88)
    print(f"wrote {OUTPUT / 'gallery.jpg'} ({width}x{height})")
    # The README's first picture: `fast-style demo`'s output (the photo beside the default model's
    # stylization of it), made here so that it changes whenever the bundled model does.
    photo = resize_longer_side(Image.fromarray(getattr(skimage.data, DEMO_PHOTO)()), DEMO_SIDE)
    demo = hstack([photo, load_stylizer(DEFAULT_MODEL, device="cpu").stylize(photo)])
    save_image(demo, OUTPUT / "demo.jpg", quality=88)
    print(f"wrote {OUTPUT / 'demo.jpg'} ({demo.width}x{demo.height})")


if __name__ == "__main__":
    main()
