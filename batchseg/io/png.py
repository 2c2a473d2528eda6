"""PNG completeness check: does the compressed image data hold every row?

Pillow decodes a well-formed PNG whose zlib stream ends early (a complete stream that
holds only half the rows, with valid CRCs and an IEND) without any error and leaves
the missing rows black. :func:`png_incomplete` inflates the IDAT chunks once more,
counting bytes without keeping them, and says when fewer bytes than the header
promises are there.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import IO

import numpy as np

__all__ = [
    "PNG_SIGNATURE",
    "fast_png_decode",
    "png_expected_bytes",
    "png_incomplete",
    "png_size",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
# Adam7 passes: (x start, y start, x step, y step)
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_PIECE = 1 << 20  # bytes read / inflated per step: memory stays bounded


def _row_bytes(width: int, bits_per_pixel: int) -> int:
    """Bytes of one filtered scanline (filter byte included); 0 for an empty pass."""
    return 1 + (width * bits_per_pixel + 7) // 8 if width > 0 else 0


def png_expected_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Size of the inflated image data that a PNG header promises."""
    bits = depth * _CHANNELS.get(colour, 1)
    if not interlace:
        return height * _row_bytes(width, bits)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        pw = (width - x0 + dx - 1) // dx if width > x0 else 0
        ph = (height - y0 + dy - 1) // dy if height > y0 else 0
        if pw and ph:
            total += ph * _row_bytes(pw, bits)
    return total


def png_incomplete(fh: IO[bytes]) -> str | None:
    """None when the PNG in ``fh`` holds all its image data, else a one-line reason.

    Reads ``fh`` from the start; never holds more than about a MiB of inflated data.
    """
    fh.seek(0)
    if fh.read(8) != PNG_SIGNATURE:
        return None  # not a PNG: nothing to say
    head = fh.read(8 + 13)
    if len(head) < 21 or head[4:8] != b"IHDR":
        return "truncated PNG file (no IHDR chunk)"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[8:21])
    expected = png_expected_bytes(width, height, depth, colour, interlace)
    fh.seek(4, 1)  # IHDR CRC
    inflater = zlib.decompressobj()
    count = 0
    seen_idat = False
    try:
        while count < expected and not inflater.eof:
            header = fh.read(8)
            if len(header) < 8:
                break
            length, ctype = struct.unpack(">I4s", header)
            if ctype != b"IDAT":
                if seen_idat or ctype == b"IEND":
                    break  # image data is contiguous: it ended here
                fh.seek(length + 4, 1)
                continue
            seen_idat = True
            left = length
            while left and count < expected and not inflater.eof:
                piece = fh.read(min(left, _PIECE))
                if not piece:
                    break
                left -= len(piece)
                count += len(inflater.decompress(piece, _PIECE))
                while inflater.unconsumed_tail and count < expected:
                    count += len(inflater.decompress(inflater.unconsumed_tail, _PIECE))
            fh.seek(left + 4, 1)  # rest of the chunk (when complete early) + CRC
    except zlib.error as exc:
        return f"corrupt PNG image data ({exc})"
    if count >= expected:
        return None
    if not interlace and expected:
        rows = count // (expected // height)
        return f"truncated PNG file (image data holds {rows} of {height} rows)"
    return f"truncated PNG file (image data holds {count} of {expected} bytes)"


# --------------------------------------------------------------------------- fast decoding

#: PNG colour types and bit depths decoded by libpng (imagecodecs) instead of Pillow: 8-bit
#: RGB, 8/16-bit grey. Pillow reads these to exactly the same array (tested); other kinds
#: (palette, alpha, 16-bit RGB, which Pillow reduces to 8 bits) keep Pillow's conversions.
FAST_KINDS = {(2, 8), (0, 8), (0, 16)}
_RAW_EXIF = b"Raw profile type exif\x00"


@dataclass(frozen=True)
class _Layout:
    """What a walk over a PNG's chunk headers found (image data skipped, never read)."""

    height: int
    width: int
    depth: int
    colour: int
    exif: bool  # an eXIf chunk, or ImageMagick's EXIF in a text chunk: orientation may turn it
    transparency: bool  # a tRNS chunk
    ended: bool  # IEND reached


def _layout(fh: IO[bytes]) -> _Layout | None:
    """Walk the chunk headers of the PNG in ``fh`` from its start; None when it is not one."""
    fh.seek(0)
    head = fh.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack_from(">IIBB", head, 16)
    exif = transparency = ended = False
    pos = 33
    while not (exif or ended):
        fh.seek(pos)
        chunk = fh.read(8 + len(_RAW_EXIF))
        if len(chunk) < 8:
            break
        length, ctype = struct.unpack_from(">I4s", chunk)
        exif = ctype == b"eXIf" or (
            ctype in (b"tEXt", b"zTXt", b"iTXt") and chunk[8:].startswith(_RAW_EXIF)
        )
        transparency |= ctype == b"tRNS"
        ended = ctype == b"IEND"
        pos += 12 + length
    return _Layout(height, width, depth, colour, exif, transparency, ended)


def fast_png_decode(data: bytes) -> np.ndarray | None:
    """``data`` decoded by libpng when it is a plain PNG (see :data:`FAST_KINDS`) and
    imagecodecs is installed; None otherwise, or when libpng fails (Pillow then decodes
    it and words the error).

    libpng (with zlib-ng) decodes CamVid's 480x360 RGB PNGs in about half Pillow's time
    and fails on short or corrupt image data itself, so the second inflate of
    :func:`png_incomplete` is not needed (README, Performance: decoding)."""
    found = _layout(io.BytesIO(data))
    if (
        found is None
        or (found.colour, found.depth) not in FAST_KINDS
        or found.exif
        or found.transparency
    ):
        return None
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - an install without it
        return None
    try:
        return np.ascontiguousarray(imagecodecs.png_decode(data))
    except Exception:  # noqa: BLE001 - Pillow decodes it again and words the error
        return None


def png_size(fh: IO[bytes]) -> tuple[int, int] | None:
    """(height, width) of a PNG whose size no EXIF orientation can change, from its IHDR and
    chunk headers alone (image data is skipped, never read); None when ``fh`` is not a PNG,
    is malformed, or carries EXIF (an eXIf chunk or ImageMagick's text chunk): Pillow then
    reads the header, orientation included. About 10x faster than opening it with Pillow,
    which matters when a collection of 10^8 small images is planned."""
    found = _layout(fh)
    if found is None or found.exif or not found.ended:
        return None  # not a PNG, EXIF (orientation), or no IEND: Pillow judges the file
    return found.height, found.width
