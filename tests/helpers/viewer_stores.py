"""Small finished stores for the report and web-app tests, built once per test session.

A real ``run_job`` on 12 small images (plus one broken file, which fails) attached to the
session's cluster: ``objects`` (``skimage.objects`` with object tables: region labels,
outlines, objects) and ``classes`` (``skimage.otsu``: a class map with two classes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.images import write_collection

BROKEN = "grey/broken.png"
_BUILT: dict[str, Path] = {}


def viewer_store(factory: pytest.TempPathFactory, address: str, kind: str) -> Path:
    """The session's store of ``kind`` (``objects`` or ``classes``), built on first use."""
    if kind in _BUILT:
        return _BUILT[kind]
    from batchseg.cluster.profiles import AddressProfile
    from batchseg.job.run import run_job
    from batchseg.job.spec import JobSpec

    root = factory.mktemp(f"viewer-{kind}")
    images = root / "images"
    write_collection(images, n=12, seed=3)
    (images / BROKEN).write_bytes(b"\x89PNG\r\n\x1a\nnot a png at all")
    method, extra = (
        ("skimage.objects", {"objects": True})
        if kind == "objects"
        else (
            "skimage.otsu",
            {},
        )
    )
    out = root / f"{kind}.zarr"
    spec = JobSpec(
        input=str(images),
        method=method,
        output=str(out),
        profile=AddressProfile(address),
        shard_size=4,
        **extra,
    )
    result = run_job(spec)
    assert (result.done, result.failed) == (12, 1), result
    _BUILT[kind] = out
    return out


#: Ids a browser or a router would mangle: dot segments, a newline, URL syntax, spaces.
ODD_IDS = ("../up/a.png", "./dot/b.png", "sub/./c.png", "nl\nname.png", "q?#%20&+ x.png")


def odd_ids_store(factory: pytest.TempPathFactory, address: str) -> Path:
    """A finished ``skimage.otsu`` store whose ids are :data:`ODD_IDS` (from a CSV manifest,
    which keeps relative entries as written), built on first use."""
    if "odd" in _BUILT:
        return _BUILT["odd"]
    import csv

    import numpy as np
    from PIL import Image

    from batchseg.cluster.profiles import AddressProfile
    from batchseg.job.run import run_job
    from batchseg.job.spec import JobSpec

    root = factory.mktemp("viewer-odd")
    listed = root / "list"
    listed.mkdir()
    rng = np.random.default_rng(5)
    for i, image_id in enumerate(ODD_IDS):
        target = (listed / image_id).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((24 + i, 32)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(target, format="PNG")
    (listed / "sub").mkdir(exist_ok=True)
    with (listed / "images.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["path"], *[[i] for i in ODD_IDS]])
    out = root / "odd.zarr"
    spec = JobSpec(
        input=str(listed / "images.csv"),
        method="skimage.otsu",
        output=str(out),
        profile=AddressProfile(address),
        shard_size=8,
    )
    result = run_job(spec)
    assert (result.done, result.failed) == (len(ODD_IDS), 0), result
    _BUILT["odd"] = out
    return out
