"""Decoders side by side: Pillow against libpng/libspng/libjpeg-turbo wrappers, pixel-checked.

    python -m tests.benchmarks.bench_decode --data ../shared/data [--rounds 5]

PNG: CamVid val (101 RGB 480x360); JPEG: BSDS500 val (100 RGB 481x321). Each decoder decodes
every file from bytes already in memory (no disk time), in rounds that alternate decoders;
the table gives the median ms per image and whether every array equals Pillow's. batchseg's
own reader (``batchseg.io.read.read_image``, from disk, with its checks) is timed too.
Decoders that are not installed are listed as skipped (``pip install pyspng simplejpeg``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _pillow(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def decoders() -> dict[str, dict[str, Callable[[bytes], np.ndarray] | None]]:
    """{format: {name: decode(bytes) or None when not installed}}."""
    out: dict[str, dict[str, Any]] = {"png": {"pillow": _pillow}, "jpeg": {"pillow": _pillow}}
    try:
        import imagecodecs

        out["png"]["imagecodecs.png_decode (libpng)"] = imagecodecs.png_decode
        out["png"]["imagecodecs.spng_decode (libspng)"] = imagecodecs.spng_decode
        out["jpeg"]["imagecodecs.jpeg8_decode (libjpeg-turbo)"] = imagecodecs.jpeg8_decode
    except ImportError:
        out["png"]["imagecodecs"] = None
    try:
        import pyspng

        out["png"]["pyspng (libspng)"] = pyspng.load
    except ImportError:
        out["png"]["pyspng"] = None
    try:
        import simplejpeg

        out["jpeg"]["simplejpeg (libjpeg-turbo)"] = simplejpeg.decode_jpeg
    except ImportError:
        out["jpeg"]["simplejpeg"] = None
    return out


def measure(files: list[Path], decode: dict[str, Any], rounds: int) -> dict[str, Any]:
    from batchseg.io.read import read_image

    blobs = [f.read_bytes() for f in files]
    reference = [_pillow(b) for b in blobs]
    live = {k: v for k, v in decode.items() if v is not None}
    live["batchseg read_image (from disk)"] = None
    times: dict[str, list[float]] = {k: [] for k in live}
    equal = {k: True for k in live}
    for _ in range(rounds):
        for name, fn in live.items():
            t0 = time.perf_counter()
            if fn is None:
                arrays = [read_image(f) for f in files]
            else:
                arrays = [fn(b) for b in blobs]
            times[name].append((time.perf_counter() - t0) / len(files) * 1e3)
            equal[name] &= all(np.array_equal(a, r) for a, r in zip(arrays, reference, strict=True))
    base = statistics.median(times["pillow"])
    rows = {
        name: {
            "ms_per_image": round(statistics.median(t), 2),
            "x_pillow": round(base / statistics.median(t), 2),
            "pixel_identical": equal[name],
        }
        for name, t in times.items()
    }
    for name, fn in decode.items():
        if fn is None:
            rows[name] = {"skipped": "not installed"}
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    data = Path(args.data)
    sets = {
        "png": sorted((data / "camvid/val").glob("*.png")),
        "jpeg": sorted((data / "bsds500/images/val").glob("*.jpg")),
    }
    result = {}
    for fmt, decode in decoders().items():
        result[fmt] = measure(sets[fmt], decode, args.rounds)
        print(f"\n{fmt} ({len(sets[fmt])} files)")
        for name, row in result[fmt].items():
            print(f"  {name:45s} {row}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
