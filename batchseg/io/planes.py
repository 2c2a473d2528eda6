"""Planes and channels of stacks: what the method sees of a multi-dimensional image.

A plane of a stack is its own image, addressed by a fragment of its uri:
``/data/embryo.tif#t=3,z=12`` (:func:`plane_uri`, :func:`split_plane`). A job's
:class:`StackView` says which axes are split into planes (``--planes``), which channels the
method sees (``--channels``) and whether depth is projected first (``--project``).

:class:`StackReader` reads planes for one task: each file is opened once and kept open while
the task reads its planes (TIFF pages are read one by one, never the whole stack). It returns
the method's image and every channel of the plane (``C x H x W``) for the per-channel
measurements.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from batchseg.errors import ImageError, UsageError
from batchseg.io.axes import Layout, parse_axes_hint, stack_refusal, tiff_layout, zarr_layout
from batchseg.io.formats import (
    TIFF_MAGIC,
    check_pixels,
    describe,
    is_zarr,
    native,
    sniff,
    tiff_open,
    tiff_orientation,
)

PLANES = ("z", "t", "zt")
PROJECTIONS = ("max", "mean")
_FRAGMENT = re.compile(r"^(?P<path>.+)#(?:t=(?P<t>\d+))?(?:,?z=(?P<z>\d+))?$")


def plane_uri(uri: str, t: int | None, z: int | None) -> str:
    """``uri`` with its plane fragment (``#t=3,z=12``; only the axes given)."""
    parts = ([f"t={t}"] if t is not None else []) + ([f"z={z}"] if z is not None else [])
    return f"{uri}#{','.join(parts)}" if parts else uri


def split_plane(uri: str) -> tuple[str, int | None, int | None]:
    """``(file uri, t, z)`` of a plane uri; a uri without a plane fragment (or an existing
    file whose name merely looks like one) is ``(uri, None, None)``."""
    match = _FRAGMENT.match(uri)
    if match is None or (match["t"] is None and match["z"] is None) or os.path.exists(uri):
        return uri, None, None
    t, z = match["t"], match["z"]
    return match["path"], None if t is None else int(t), None if z is None else int(z)


@dataclass(frozen=True)
class StackView:
    """How a job reads stacks: ``planes`` (``z``, ``t``, ``zt`` or none), ``channels`` the
    method sees (indices; ``mean``; none: the file's one channel or RGB), ``project``
    (``max``/``mean`` over z), the axes hint for files without names, and whether every
    channel is measured (None: where the collection has several)."""

    planes: str = ""
    channels: tuple[int, ...] | str = ()
    project: str = ""
    axes: str | None = None
    measure_channels: bool | None = None

    @property
    def active(self) -> bool:
        """Whether stacks are read at all (any option given)."""
        return bool(self.planes or self.channels or self.project or self.axes)

    def record(self) -> dict[str, Any]:
        """The options as given (job spec keys; the fingerprint's part)."""
        out: dict[str, Any] = {}
        if self.planes:
            out["planes"] = self.planes
        if self.channels:
            chans = self.channels
            out["channels"] = chans if isinstance(chans, str) else ",".join(map(str, chans))
        if self.project:
            out["project"] = self.project
        if self.axes:
            out["axes"] = self.axes.lower()
        if self.measure_channels is not None:
            out["measure_channels"] = "all" if self.measure_channels else "none"
        return out


def parse_view(
    planes: str | None = None,
    channels: str | None = None,
    project: str | None = None,
    axes: str | None = None,
    measure_channels: str | None = None,
) -> StackView:
    """A :class:`StackView` from the job spec's text values (UsageError naming the option)."""
    planes = (planes or "").strip().lower()
    if planes and planes not in PLANES:
        raise UsageError(f"--planes must be one of z, t, zt, got {planes!r}")
    project = (project or "").strip().lower()
    if project and project not in PROJECTIONS:
        raise UsageError(f"--project must be max or mean, got {project!r}")
    if project and "z" in planes:
        raise UsageError("--project reduces z to one plane: give --planes t or no --planes")
    measure = (measure_channels or "").strip().lower()
    if measure and measure not in ("all", "none"):
        raise UsageError(f"--measure-channels must be all or none, got {measure_channels!r}")
    return StackView(
        planes=planes,
        channels=_parse_channels(channels),
        project=project,
        axes=parse_axes_hint(axes),
        measure_channels=None if not measure else measure == "all",
    )


def recorded_view(job: dict[str, Any], channels: str | None = None) -> StackView | None:
    """The stack options a store's job record holds (``channels``: others to show), or None
    for a job without them."""
    keys = ("planes", "channels", "project", "axes", "measure_channels")
    values = {k: job.get(k) for k in keys}
    if channels is not None:
        values["channels"] = channels
    values["channels"] = None if values["channels"] is None else str(values["channels"])
    view = parse_view(**values)
    return view if view.active else None


def _parse_channels(text: str | None) -> tuple[int, ...] | str:
    text = (text or "").strip().lower()
    if not text:
        return ()
    if text == "mean":
        return "mean"
    try:
        picked = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--channels expects an index, three indices (as RGB) or mean, got {text!r}"
        ) from None
    if len(picked) not in (1, 3) or min(picked) < 0:
        raise UsageError(f"--channels expects one index or three (as RGB), each >= 0, got {text!r}")
    return picked


class Viewed(NamedTuple):
    """A plane as the method sees it, and all its channels (``C x H x W``) for measuring."""

    image: np.ndarray
    channels: np.ndarray


def view_plane(stack: np.ndarray, rgb: bool, view: StackView, names: tuple[str, ...]) -> Viewed:
    """The method's image from one plane's channels ``stack`` (``C x H x W``; ``rgb``: an RGB
    picture's three colours)."""
    picked = view.channels
    n = stack.shape[0]
    if picked == "mean":
        image = stack.mean(axis=0, dtype=np.float64).astype(np.float32)
    elif picked:
        assert isinstance(picked, tuple)
        bad = [i for i in picked if i >= n]
        if bad:
            raise ImageError(
                f"channel {bad[0]} is out of range: the image has {n} channel(s) "
                f"({', '.join(names) or 'unnamed'}; --channels counts from 0)"
            )
        image = stack[picked[0]] if len(picked) == 1 else np.stack([stack[i] for i in picked], -1)
    elif rgb:
        image = np.moveaxis(stack, 0, -1)
    elif n == 1:
        image = stack[0]
    else:
        raise ImageError(
            f"image has {n} channels ({', '.join(names)}); choose what the method sees with "
            "--channels (an index, three as RGB, or mean)"
        )
    return Viewed(np.ascontiguousarray(image), stack)


class _Open:
    """One opened stack file: its layout and how to read a plane's channels."""

    def __init__(self, layout: Layout, read: Any, closer: ExitStack) -> None:
        self.layout = layout
        self.read = read  # (t, z or None for all) -> (Z, C, H, W)
        self.closer = closer
        self.lock = threading.Lock()


class StackReader:
    """Reads the planes of one task; every file is opened once (call :meth:`close`)."""

    def __init__(self, view: StackView, names: tuple[str, ...] = ()) -> None:
        self.view = view
        self.names = names
        self.files: dict[str, _Open] = {}
        self.lock = threading.Lock()

    def close(self) -> None:
        for handle in self.files.values():
            handle.closer.close()
        self.files.clear()

    def layout(self, path: str) -> Layout:
        """The layout of the file ``path`` (opened and kept open)."""
        return self._open(path).layout

    def read(self, uri: str, max_pixels: int | None) -> Viewed:
        """The plane ``uri`` (a file, or a file with a plane fragment) as the method sees it."""
        path, t, z = split_plane(uri)
        with self.lock:
            known = path in self.files
        if not known and not (is_zarr(path) or _is_tiff(path)):  # sniffed once per task
            return _flat(path, t, z, self.view, max_pixels)
        handle = self._open(path)
        layout = handle.layout
        check_pixels(layout.height, layout.width, max_pixels)
        refusal = stack_refusal(layout, self.view.planes, bool(self.view.project))
        if refusal is not None:
            raise ImageError(refusal)
        for axis, index in (("T", t), ("Z", z)):
            if index is not None and index >= layout.size(axis):
                raise ImageError(
                    f"plane {axis.lower()}={index} is out of range: the image has "
                    f"{layout.size(axis)} ({layout.describe()})"
                )
        with handle.lock:
            planes = handle.read(t or 0, None if self.view.project else (z or 0))
        if self.view.project == "max":
            stack = planes.max(axis=0)
        elif self.view.project == "mean":
            stack = planes.mean(axis=0, dtype=np.float64).astype(np.float32)
        else:
            stack = planes[0]
        return view_plane(stack, layout.rgb, self.view, layout.names)

    def _open(self, path: str) -> _Open:
        with self.lock:
            handle = self.files.get(path)
            if handle is None:
                handle = _open_stack(path, self.view.axes)
                self.files[path] = handle
            return handle


def plane_channels(
    uri: str, view: StackView, max_pixels: int | None, names: tuple[str, ...] = ()
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Every channel of the plane ``uri`` (``H x W x C``; one channel: ``H x W``) and their
    ``names`` (``c0``... where they do not fit), e.g. for an export."""
    reader = StackReader(view)
    try:
        channels = reader.read(uri, max_pixels).channels
    finally:
        reader.close()
    if channels.shape[0] == 1:
        return channels[0], ()
    if len(names) != channels.shape[0]:
        names = tuple(f"c{i}" for i in range(channels.shape[0]))
    return np.moveaxis(channels, 0, -1), names


def _is_tiff(path: str) -> bool:
    from batchseg.io.formats import open_binary

    with open_binary(path) as fh:
        return sniff(fh)[:4] in TIFF_MAGIC


def _flat(
    path: str, t: int | None, z: int | None, view: StackView, max_pixels: int | None
) -> Viewed:
    """A picture that is no stack (PNG, JPEG...): one channel, or RGB."""
    from batchseg.io.read import read_image

    if t or z:
        raise ImageError(f"plane t={t or 0}, z={z or 0} of a file that is not a stack")
    image = read_image(path, max_pixels=max_pixels)
    stack = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    names = ("grey",) if image.ndim == 2 else ("red", "green", "blue")
    return view_plane(stack, image.ndim == 3, view, names)


def _open_stack(path: str, hint: str | None) -> _Open:
    closer = ExitStack()
    try:
        if is_zarr(path):
            return _open_zarr(path, hint, closer)
        from batchseg.io.chunked import open_file

        fh = closer.enter_context(open_file(path))
        tif = closer.enter_context(tiff_open(fh))
        return _open_tiff(tif, hint, closer)
    except BaseException:
        closer.close()
        raise


def _open_zarr(path: str, hint: str | None, closer: ExitStack) -> _Open:
    import zarr

    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:  # noqa: BLE001 - missing, not Zarr, bad metadata
        raise ImageError(f"cannot open Zarr image ({describe(exc)})") from exc
    array, layout = zarr_layout(node, hint)
    axes = layout.axes

    def read(t: int, z: int | None) -> np.ndarray:
        index = tuple(
            t if a == "T" else (slice(None) if z is None else slice(z, z + 1)) if a == "Z"
            else slice(None)
            for a in axes
        )  # fmt: skip
        try:
            arr = np.asarray(array[index])
        except Exception as exc:
            raise ImageError(f"cannot read Zarr plane ({describe(exc)})") from exc
        kept = [a for a in axes if a != "T"]
        for a in "ZC":
            if a not in kept:
                arr, kept = arr[None], [a, *kept]
        return native(np.transpose(arr, [kept.index(a) for a in "ZCYX"]))

    return _Open(layout, read, closer)


def _open_tiff(tif: Any, hint: str | None, closer: ExitStack) -> _Open:
    layout = tiff_layout(tif, hint)
    series = tif.series[0]
    page = series.keyframe
    if tiff_orientation(page) != 1:
        raise ImageError("TIFF stacks with an orientation tag are not supported")
    page_axes = str(page.axes)
    raw = str(series.axes)
    axes = layout.axes if hint is not None and len(hint) == len(raw) else raw
    axes = "".join("Z" if a in "IQ" else a for a in axes)
    lead_axes = axes[: len(axes) - len(page_axes)]
    lead = tuple(int(n) for n in series.shape[: len(lead_axes)])
    if (
        not raw.endswith(page_axes)
        or set(page_axes) - set("YXS")
        or int(np.prod(lead)) != len(series.pages)
    ):
        raise ImageError(f"TIFF layout {raw} {series.shape} cannot be read plane by plane")
    pages = series.pages
    keep = 3 if layout.rgb else 1 if "C" in lead_axes else layout.channels

    def one(position: dict[str, int]) -> np.ndarray:
        idx = (
            int(np.ravel_multi_index([position.get(a, 0) for a in lead_axes], lead)) if lead else 0
        )
        try:
            arr = np.asarray(pages[idx].asarray())
        except Exception as exc:
            raise ImageError(f"cannot read TIFF page {idx} ({describe(exc)})") from exc
        arr = arr.reshape([int(n) for n in page.shape])
        kept = page_axes if "S" in page_axes else "S" + page_axes
        if "S" not in page_axes:
            arr = arr[None]
        arr = np.transpose(arr, [kept.index(a) for a in "SYX"])
        return arr[:keep]

    def read(t: int, z: int | None) -> np.ndarray:
        depth = range(layout.size("Z")) if z is None else [z]
        n_c = layout.channels if "C" in lead_axes else 1
        planes = [
            np.concatenate([one({"T": t, "Z": zz, "C": c}) for c in range(n_c)]) for zz in depth
        ]
        return native(np.stack(planes))

    return _Open(layout, read, closer)
