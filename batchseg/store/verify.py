"""Integrity check of a store: every done row has its data, and that data reads back.

Finds rows whose status code is unknown (edited or corrupted), done images whose label,
confidence or pyramid chunks are missing, fail their crc32c checksum or do not decode, and
done rows without statistics. With ``mark`` those rows go back to pending (and the consolidated
table is invalidated), so the next ``batchseg run`` on the store re-segments them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from batchseg.core.kinds import Kind
from batchseg.errors import StoreError
from batchseg.store import objects
from batchseg.store.array_meta import META_KEY, record
from batchseg.store.layout import (
    CATALOGUE,
    CLASSES,
    CONFIDENCE,
    DONE,
    KNOWN_STATUS,
    PENDING,
    STATS,
    published_rows,
)
from batchseg.store.object_check import COUNT_COLUMN, part_damage
from batchseg.store.read import (
    array,
    attributes,
    chunk_coords,
    chunks_always_written,
    label_array,
    metadata_problem,
    missing_chunks,
    normalise_status,
    open_group,
    pyramid_array,
    read_array,
    stat_names,
    subgroup,
    update_attributes,
)
from batchseg.store.table import consolidate, invalidate_consolidated, table_damage, table_group
from batchseg.store.write import mark_pending

log = logging.getLogger(__name__)

MISSING = "label data missing"
CONF_MISSING = "confidence data missing"
CLASS_MISSING = "class map data missing"
CHECKSUM = "checksum mismatch"


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found.

    Attributes
    ----------
    checked : int
        Done rows checked (including those found damaged).
    damaged : list of (str, str)
        ``(image_id, reason)`` per damaged row, in table order, e.g. ``"label data missing"``,
        ``"checksum mismatch (label data)"``, ``"unknown status code 9"``.
    marked : int
        Rows set back to pending for re-segmentation (0 without ``mark``).
    table_stale : bool
        The consolidated table did not match the catalogue (invalidated with ``mark``).
    table_damaged : str or None
        Why the consolidated table does not read back (a checksum, a lost chunk), else None.
    table_rebuilt : bool
        The damaged table was rebuilt from the per-shard arrays (``mark``); when they are
        damaged too, it is invalidated instead (readers use them; the next run rebuilds it).
    """

    checked: int
    damaged: list[tuple[str, str]] = field(default_factory=list)
    marked: int = 0
    table_stale: bool = False
    table_damaged: str | None = None
    table_rebuilt: bool = False
    #: arrays whose zarr.json differs from the store's record (their data is not checked)
    metadata: list[str] = field(default_factory=list)
    #: an older store without a record of array metadata got one (``mark``)
    metadata_recorded: bool = False


def verify(path: str, *, mark: bool = True) -> VerifyReport:
    """Check that every done row of the store at ``path`` has readable, intact data.

    Parameters
    ----------
    path : str
        The store (local path or fsspec URL).
    mark : bool
        Set damaged rows back to pending (the next run re-segments them) and invalidate the
        consolidated table when anything was found. The caller holds the store's lock.

    Returns
    -------
    VerifyReport

    Raises
    ------
    StoreError
        ``path`` is not a batchseg store, or its catalogue cannot be read.
    """
    root = open_group(path, mode="r+" if mark else "r")
    attrs = attributes(root)
    S = int(attrs["shard_size"])
    metadata = _metadata(root)
    rows_edited = [p for p in metadata if p == STATS or p.startswith(f"{CATALOGUE}/")]
    if rows_edited:  # every check reads them: nothing can be checked, nothing marked
        raise StoreError(
            f"{path}: the metadata (zarr.json) of {', '.join(rows_edited)} is not what the "
            "store recorded; restore it (its rows would read wrong)"
        )
    cat = subgroup(root, CATALOGUE)
    published = slice(0, published_rows(attrs))  # not the rows of an unfinished append
    bucket = read_array(cat, "bucket", published)
    bucket_row = read_array(cat, "bucket_row", published)
    ids = read_array(cat, "image_id", published, dtype=object)
    real = bucket >= 0
    found: dict[int, str] = {}
    raw = _chunked(array(cat, "status"), S, len(bucket), PENDING, np.int8, found, "status damaged")
    for r in np.flatnonzero(real & ~np.isin(raw, KNOWN_STATUS)):
        found.setdefault(int(r), f"unknown status code {int(raw[r])}")
    done = real & (raw == DONE)
    checked = int(done.sum())
    stats = _stats(root, S, len(bucket), done, found)
    for b in attrs["buckets"]:
        rows = np.flatnonzero(done & (bucket == int(b["index"])))
        rows = np.asarray([r for r in rows if int(r) not in found], dtype=np.int64)
        if rows.size == 0 or int(b["height"]) == 0:
            continue
        if any(p.split("/")[1:2] == [str(b["name"])] for p in metadata):
            continue  # its chunks would decode wrong: reported, not re-segmented into it
        if b.get("tile"):
            _check_tiled(root, b, int(rows[0]), found)
        else:
            _check_bucket(root, b, rows, bucket_row, _zero_ok(root, attrs, b, stats), found)
    if attrs.get("objects"):
        _check_objects(path, S, done, stats, stat_names(root), found)
    damaged_rows = sorted(found)
    damaged = [(str(ids[r]), found[r]) for r in damaged_rows]
    stale = _table_stale(root, raw, real)
    table_damaged = None if stale else table_damage(root)
    marked, rebuilt = 0, False
    recorded = mark and not isinstance(attrs.get(META_KEY), dict)
    if recorded:  # an older store: record its arrays as they are now
        update_attributes(root, **{META_KEY: record(root)})
    if mark and (damaged_rows or stale or table_damaged):
        marked = mark_pending(root, damaged_rows, S)
        invalidate_consolidated(root)
        if table_damaged and not damaged_rows:
            rebuilt = _rebuild(root)
    for image_id, reason in damaged:
        log.warning("damaged: %s: %s", image_id, reason)
    return VerifyReport(
        checked=checked,
        damaged=damaged,
        marked=marked,
        table_stale=stale,
        table_damaged=table_damaged,
        table_rebuilt=rebuilt,
        metadata=metadata,
        metadata_recorded=recorded,
    )


def _metadata(root: zarr.Group) -> list[str]:
    """Paths of recorded arrays whose metadata (or label array shape) is not the record's."""
    known = attributes(root).get(META_KEY)
    if not isinstance(known, dict):
        return []
    edited = []
    for path in sorted(known):
        try:
            arr = array(root, path)
        except (KeyError, StoreError):
            edited.append(path)
            continue
        if metadata_problem(root, arr) is not None:
            log.warning("array metadata edited: %s", path)
            edited.append(path)
    return edited


def _rebuild(root: zarr.Group) -> bool:
    """Rebuild the consolidated table from the per-shard arrays; False when they do not read
    (the table stays invalidated: readers use the per-shard arrays)."""
    try:
        consolidate(root, force=True)
    except StoreError as exc:
        log.warning("consolidated table not rebuilt: %s", exc)
        return False
    log.info("consolidated table rebuilt from the per-shard arrays")
    return True


def _check_objects(
    path: str, S: int, done: np.ndarray, stats: np.ndarray, names: list[str], found: dict[int, str]
) -> None:
    """Every shard with done rows has its object table, readable, intact and holding the rows
    its statistics count (``n_objects``); if not, its done rows go to ``found`` (a rerun redoes
    the shard and rewrites the part whole)."""
    column = names.index(COUNT_COLUMN) if COUNT_COLUMN in names else None
    for k in range(0, -(-len(done) // S)):
        rows = np.flatnonzero(done[k * S : (k + 1) * S]) + k * S
        if rows.size == 0:
            continue
        want = None
        if column is not None and np.isfinite(stats[rows, column]).all():
            counts = stats[k * S : (k + 1) * S, column]
            want = int(counts[np.isfinite(counts)].sum())
        reason = part_damage(path, objects.shard_part_name(k), want)
        if reason is not None:
            for r in rows:
                found.setdefault(int(r), reason)


def _chunked(
    arr: zarr.Array, S: int, n: int, fill: Any, dtype: Any, found: dict[int, str], reason: str
) -> np.ndarray:
    """A per-row array read one shard chunk at a time; unreadable chunks' rows go to ``found``."""
    out = np.full(n, fill, dtype=dtype)
    for start in range(0, n, S):
        sl = slice(start, min(n, start + S))
        try:
            out[sl] = np.asarray(arr[sl])
        except (ValueError, RuntimeError):
            for r in range(sl.start, sl.stop):
                found.setdefault(r, reason)
    return out


def _stats(root: zarr.Group, S: int, n: int, done: np.ndarray, found: dict[int, str]) -> np.ndarray:
    """The statistics of every row; done rows whose statistics are lost go to ``found``."""
    arr = array(root, STATS)
    out = np.full((n, arr.shape[1]), np.nan)
    for start in range(0, n, S):
        sl = slice(start, min(n, start + S))
        try:
            out[sl] = np.asarray(arr[sl])
        except (ValueError, RuntimeError):
            for r in np.flatnonzero(done[sl]) + start:
                found.setdefault(int(r), f"{CHECKSUM} (statistics)")
    for r in np.flatnonzero(done & np.isnan(out).all(axis=1)):
        found.setdefault(int(r), "statistics missing")
    return out


def _zero_ok(
    root: zarr.Group, attrs: dict[str, Any], b: dict[str, Any], stats: np.ndarray
) -> Callable[[int], bool]:
    """Whether a row may have no label chunk: only in older stores, for an all-zero map."""
    if chunks_always_written(root):
        return lambda row: False
    pixels = int(b["height"]) * int(b["width"])
    classes = attrs.get("method", {}).get("kind") == Kind.CLASSES

    def ok(row: int) -> bool:
        first = stats[row, 0] if stats.shape[1] else np.nan
        return bool(np.isfinite(first) and first == (pixels if classes else 0))

    return ok


def _arrays(root: zarr.Group, name: str) -> list[tuple[zarr.Array, str, str]]:
    """The label array of a bucket and its confidence array (when the store has them)."""
    out = [(label_array(root, name), MISSING, "label data")]
    if CONFIDENCE in root and name in subgroup(root, CONFIDENCE):
        out.append((label_array(root, name, confidence=True), CONF_MISSING, "confidence data"))
    if CLASSES in root and name in subgroup(root, CLASSES):
        out.append((label_array(root, name, classes=True), CLASS_MISSING, "class map data"))
    return out


def _check_bucket(
    root: zarr.Group,
    b: dict[str, Any],
    rows: np.ndarray,
    bucket_row: np.ndarray,
    zero_ok: Callable[[int], bool],
    found: dict[int, str],
) -> None:
    """Done rows of an ordinary bucket: shard objects present, every image decodes."""
    s = int(b["shard_size"])
    by_shard: dict[int, list[int]] = {}
    for r in rows:
        by_shard.setdefault(int(bucket_row[r]) // s, []).append(int(r))
    for arr, missing_reason, what in _arrays(root, str(b["name"])):
        conf = what != "label data"
        for j, members in by_shard.items():
            if missing_chunks(arr, [(j, 0, 0)]):
                for r in members:
                    if conf or not zero_ok(r):
                        found.setdefault(r, missing_reason)
                continue
            try:
                np.asarray(arr[j * s : (j + 1) * s])
                continue
            except (ValueError, RuntimeError):
                pass
            for r in members:  # find the damaged images one by one
                try:
                    np.asarray(arr[int(bucket_row[r])])
                except (ValueError, RuntimeError):
                    found.setdefault(r, f"{CHECKSUM} ({what})")


def _check_tiled(root: zarr.Group, b: dict[str, Any], row: int, found: dict[int, str]) -> None:
    """A tiled image: every tile of its labels, confidence and stored pyramid levels."""
    name = str(b["name"])
    targets = _arrays(root, name)
    for level in b.get("levels") or []:
        arr = pyramid_array(root, name, int(level))
        if arr is None:
            found.setdefault(row, f"label pyramid level {level} missing")
            return
        targets.append((arr, f"label pyramid level {level} missing", f"pyramid level {level}"))
    region = (slice(0, 1), slice(None), slice(None))
    for arr, missing_reason, what in targets:
        # older stores skipped all-zero tiles: there an absent tile is no evidence of loss
        if chunks_always_written(root) and missing_chunks(arr, chunk_coords(arr, region)):
            found.setdefault(row, missing_reason)
            return
        for coords in chunk_coords(arr, region):
            sel = tuple(slice(c * k, (c + 1) * k) for c, k in zip(coords, arr.chunks, strict=True))
            try:
                np.asarray(arr[sel])
            except (ValueError, RuntimeError):
                found.setdefault(row, f"{CHECKSUM} ({what})")
                return


def _table_stale(root: zarr.Group, raw: np.ndarray, real: np.ndarray) -> bool:
    """Whether a consolidated table exists that does not hold the catalogue's statuses."""
    try:
        table = table_group(root)
        if table is None:
            return False
        stored = read_array(table, "status")
    except (StoreError, KeyError):
        return True
    want = normalise_status(raw, real)[real]
    return stored.shape != want.shape or not np.array_equal(normalise_status(stored), want)
