"""Issue 17 item 11: ``mask --overlay`` applies the pixel limit to the source decode."""

from __future__ import annotations

import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batchseg.errors import ImageError
from batchseg.io.windowed import read_overlay_source
from tests.helpers.cli import run_cli


def _chunk(ctype: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def bomb_png(side: int = 60000) -> bytes:
    """A ~100-byte PNG whose header claims ``side`` x ``side`` grey pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * (side + 1), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_overlay_source_is_limited_by_the_label_map(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 300
    before = _peak_rss_mb()
    start = time.perf_counter()
    with pytest.raises(ImageError, match="exceeds the pixel limit 1024 "):
        read_overlay_source(str(path), (32, 32))
    with pytest.raises(ImageError, match="exceeds the pixel limit 4096 "):
        read_overlay_source(str(path), (32, 32), level=1)
    with pytest.raises(ImageError, match="exceeds the pixel limit 500 "):
        read_overlay_source(str(path), (32, 32), max_pixels=500)
    assert time.perf_counter() - start < 5
    assert _peak_rss_mb() - before < 200  # the decode would need 3.6 GB


def test_mask_overlay_refuses_a_bomb_in_place_of_the_source(
    tmp_path: Path, cluster_address: str
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(folder / "a.png")
    out = tmp_path / "out.zarr"
    result = run_cli("run", folder, "-m", "skimage.otsu", "-o", out, "--scheduler", cluster_address)
    assert result.exit_code == 0, result.output
    ok = run_cli("mask", out, "a.png", "-o", tmp_path / "ok.png", "--overlay")
    assert ok.exit_code == 0, ok.output
    (folder / "a.png").write_bytes(bomb_png())  # the attack: the source replaced by a bomb
    before = _peak_rss_mb()
    start = time.perf_counter()
    bad = run_cli("mask", out, "a.png", "-o", tmp_path / "bad.png", "--overlay")
    assert time.perf_counter() - start < 10
    assert _peak_rss_mb() - before < 200
    assert bad.exit_code != 0
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "exceeds the pixel limit 1024" in lines[0], bad.output
    assert not (tmp_path / "bad.png").exists()
    low = run_cli("mask", out, "a.png", "-o", tmp_path / "x.png", "--overlay", "--max-pixels", "0")
    assert low.exit_code == 2, low.output
