"""Regenerate the pictures of the docs with batchseg's own commands (never edit them by hand).

    python docs/make_pictures.py        # writes docs/images/*.png

It makes the demo collection, segments it with the embedded cluster and draws overlays with
legends, exactly as a user would (``batchseg demo-data``, ``run``, ``mask``). The report page
screenshot needs a browser and is left out.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"

#: (store name, method arguments, image id, picture name)
PICTURES = [
    (
        "regions.zarr",
        ["-m", "skimage.slic", "-p", "n_segments=300"],
        "astronaut/astronaut_0000.jpg",
        "overlay-slic.png",
    ),
    ("otsu.zarr", ["-m", "skimage.otsu"], "coins/coins_0004.png", "overlay-otsu.png"),
    ("cells.zarr", ["-m", "skimage.watershed"], "coins/coins_0004.png", "overlay-watershed.png"),
]


def batchseg(*args: str) -> None:
    """Run one batchseg command of this interpreter; stop on failure."""
    subprocess.run(
        [sys.executable, "-c", "from batchseg.cli import main; main()", *args], check=True
    )


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        batchseg("demo-data", str(work / "photos"), "--count", "5")
        for store, method, image_id, name in PICTURES:
            batchseg(
                "run",
                str(work / "photos"),
                *method,
                "-o",
                str(work / store),
                "--workers",
                "1",
                "-q",
            )
            batchseg(
                "mask",
                str(work / store),
                image_id,
                "--output",
                str(IMAGES / name),
                "--overlay",
                "--legend",
            )


if __name__ == "__main__":
    main()
