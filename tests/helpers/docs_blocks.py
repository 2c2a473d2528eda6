"""The code blocks of the README and the docs pages, and how the tests run them.

A ``bash`` or ``python`` block runs in the suite unless the line before its fence says
otherwise: ``<!-- docs-test: slow -->`` (run only by ``make docs-test``, marker ``docs_slow``)
or ``<!-- docs-test: skip REASON -->`` (never run: it needs a real cluster, network, weights or
data outside the repository; the reason says which test covers it instead). Blocks of one page
run in order in one folder, after the page's setup (generated data) below.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
#: Files whose examples are tested: the README and every page of the site.
PAGES = ("README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md")))
RUN_LANGS = ("bash", "python")
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^<!-- docs-test: (slow|skip)(?: (.+?))? -->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its page, first line, language, text and test mode."""

    page: str
    line: int
    lang: str
    code: str
    mode: str  # "suite", "slow", "skip" (or "text" for blocks that are not run)
    reason: str = ""


def page_blocks(page: str) -> list[Block]:
    """The fenced blocks of ``page`` (relative to the repository) with their test modes."""
    lines = (REPO / page).read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        lang, start = match.group(1), i
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        mark = _MARK.match(lines[start - 1]) if start else None
        if lines[start - 1].startswith("<!-- docs-test") and not mark:
            raise ValueError(f"{page}:{start}: unreadable docs-test mark {lines[start - 1]!r}")
        mode = mark.group(1) if mark else ("suite" if lang in RUN_LANGS else "text")
        reason = (mark.group(2) or "") if mark else ""
        out.append(Block(page, start + 1, lang, "\n".join(lines[start + 1 : end]), mode, reason))
        i = end + 1
    return out


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    text = code.replace("\\\n", " ")
    return [words for line in text.splitlines() if (words := shlex.split(line, comments=True))]


def on_cluster(words: list[str], address: str) -> list[str]:
    """``batchseg run ...`` attached to the test session's cluster instead of an embedded one.

    The cluster's workers run in another folder, so the store is named by its absolute path.
    """
    if words[1:2] != ["run"] or "--scheduler" in words or "--dry-run" in words:
        return words
    words = list(words)
    for i, word in enumerate(words[:-1]):
        if word in ("-o", "--output"):
            words[i + 1] = str(Path(words[i + 1]).resolve())
    return [*words, "--scheduler", address]


def discs(path: Path, n: int = 5, side: int = 160, seed: int = 0) -> None:
    """A grey PNG of ``n`` x ``n`` bright discs on a dark, noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    image = rng.normal(40, 8, (side, side))
    step = side / n
    for r in range(n):
        for c in range(n):
            cy, cx = (r + 0.5) * step, (c + 0.5) * step
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < (step * 0.35) ** 2] = 200
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)


def cells_folder(work: Path, address: str | None = None) -> None:
    """``cells/``: two plates of disc images, as the objects guide's commands expect."""
    for i, name in enumerate(("plate1/a01.png", "plate1/a02.png", "plate2/b01.png")):
        discs(work / "cells" / name, seed=i)


def photos_folder(work: Path, address: str | None = None) -> None:
    """``photos/``: the demo collection's first four images."""
    from batchseg.demo import make_collection

    make_collection(work / "photos", count=4)


def photos_store(work: Path, address: str | None = None) -> None:
    """What the quick start's commands leave: ``photos/`` (the demo collection's first four
    images, at most 96 pixels a side to keep the suite fast) and ``photos.zarr``, their SLIC
    store (on the cluster at ``address``)."""
    import batchseg
    from batchseg.demo import make_collection

    make_collection(work / "photos", count=4, max_side=96)
    batchseg.run(
        work / "photos",
        method="skimage.slic",
        params={"n_segments": 300},
        output=work / "photos.zarr",
        scheduler=address,
    )


def stacks_folder(work: Path, address: str | None = None) -> None:
    """``stacks/embryo.ome.tif`` (an OME-TIFF time-lapse of z-stacks, channels DAPI and GFP)
    and ``tiles/scene.tif`` (a 4-band GeoTIFF), as the microscopy guide's commands expect."""
    import tifffile

    from tests.helpers.stacks import make_stack, write_ome_tiff

    rng = np.random.default_rng(3)
    (work / "stacks").mkdir(parents=True, exist_ok=True)
    write_ome_tiff(work / "stacks" / "embryo.ome.tif", make_stack(rng, (2, 3, 2, 64, 64)),
                   "TZCYX", ["DAPI", "GFP"])  # fmt: skip
    (work / "tiles").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        work / "tiles" / "scene.tif",
        make_stack(rng, (4, 64, 64)),
        photometric="minisblack",
        planarconfig="separate",
        extratags=[(33550, "d", 3, (10.0, 10.0, 0.0)), (33922, "d", 6, (0, 0, 0, 5e5, 4e6, 0))],
    )


#: Generated data each page's blocks expect in their folder (pages not listed need none, or
#: make their own, as the quick start does with ``batchseg demo-data``).
SETUPS: dict[str, Callable[[Path, str | None], None]] = {
    "docs/guides/objects.md": cells_folder,
    "docs/guides/microscopy.md": stacks_folder,
    "docs/guides/growing-collections.md": photos_folder,
    "docs/reference/store-format.md": photos_store,
    "README.md": photos_store,
    "docs/getting-started.md": photos_store,
}
