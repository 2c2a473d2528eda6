"""Ground truth: which truth files belong to which image id, and what their values mean.

A truth source is a folder or a CSV manifest (``image_id,truth_path``). In a folder, an image
``photos/a.jpg`` is matched by relative path with any image suffix (``TRUTH/photos/a.png``),
or, with a pattern, by its stem: ``{stem}_L.png`` (CamVid's colour labels) or ``{stem}_*.png``
(several annotators: every match is scored, BSDS style), looked up in the image's own subfolder
of TRUTH. Values map to the store's classes through a ``value,class`` CSV (grey values or
colours ``#rrggbb`` / ``r g b``; class ``ignore`` leaves those pixels out), or are class indices.
"""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from batchseg.errors import UsageError
from batchseg.evaluate.truth_read import outside
from batchseg.io.formats import IMAGE_SUFFIXES
from batchseg.render import parse_colour

#: Marks pixels left out of scoring in a mapped truth map.
IGNORE = -1


@dataclass(frozen=True)
class TruthFiles:
    """Truth files per image id, the ids that have none, and the ids whose truth was refused
    (with why: a path leading outside the truth folder)."""

    files: dict[str, list[str]]
    missing: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def match_truth(truth: str, image_ids: Sequence[str], pattern: str | None = None) -> TruthFiles:
    """The truth files of each of ``image_ids`` (see the module docstring). In a folder, a
    truth file must resolve inside it (``..`` in an id or pattern, a symlink leading out):
    such an id is refused, never read."""
    if truth.lower().endswith(".csv"):
        listed = _read_manifest(truth)
        files = {i: [listed[i]] for i in image_ids if i in listed}
    elif not os.path.isdir(truth):
        raise UsageError(f"truth not found: {truth} (a folder or a CSV image_id,truth_path)")
    elif pattern is not None:
        files = {i: found for i in image_ids if (found := _by_pattern(truth, i, pattern))}
    else:
        index = _index_folder(truth)
        files = {i: [index[image_key(i)]] for i in image_ids if image_key(i) in index}
    refused: dict[str, str] = {}
    if os.path.isdir(truth):
        for image_id, paths in list(files.items()):
            reasons = [r for p in paths if (r := outside(truth, p))]
            if reasons:
                refused[image_id] = reasons[0]
                del files[image_id]
    missing = [i for i in image_ids if i not in files and i not in refused]
    return TruthFiles(files, missing, refused)


def image_key(image_id: str) -> str:
    """An id's relative path without its suffix (``photos/a.jpg`` -> ``photos/a``)."""
    path = PurePosixPath(image_id)
    return str(path.with_suffix("")) if path.suffix else str(path)


def _index_folder(folder: str) -> dict[str, str]:
    """Truth images under ``folder`` by relative path without suffix; two files with one key
    (``a.png`` and ``a.tif``) are ambiguous: an error naming both."""
    index: dict[str, str] = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            path = os.path.join(root, name)
            key = image_key(os.path.relpath(path, folder).replace(os.sep, "/"))
            if key in index:
                raise UsageError(
                    f"two truth files for {key!r}: {index[key]} and {path}; "
                    "use --truth-pattern to say which"
                )
            index[key] = path
    return index


def _by_pattern(folder: str, image_id: str, pattern: str) -> list[str]:
    if "{stem}" not in pattern:
        raise UsageError(f"--truth-pattern must contain {{stem}}, got {pattern!r}")
    path = PurePosixPath(image_id)
    stem = path.stem
    where = os.path.join(folder, *path.parent.parts)
    spelled = os.path.join(where, pattern.replace("{stem}", glob.escape(stem)))
    return sorted(glob.glob(spelled))


def _read_manifest(path: str) -> dict[str, str]:
    rows = _read_csv(path, ("image_id", "truth_path"))
    base = os.path.dirname(os.path.abspath(path))
    return {
        r["image_id"]: r["truth_path"]
        if os.path.isabs(r["truth_path"])
        else os.path.join(base, r["truth_path"])
        for r in rows
    }


def _read_csv(path: str, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV that must have ``columns``; UsageError naming the file otherwise."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows or not set(columns) <= set(rows[0]):
        raise UsageError(f"{path} needs the columns {','.join(columns)}")
    return rows


@dataclass(frozen=True)
class ValueMap:
    """Truth value (grey or RGB) -> class index, or :data:`IGNORE`."""

    grey: dict[int, int] = field(default_factory=dict)
    colour: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def apply(self, truth: np.ndarray, ignore: Iterable[int] = ()) -> np.ndarray:
        """Class indices (int64, IGNORE for left-out pixels) of a truth image; an unlisted value
        is a ValueError naming it (unless in ``ignore``)."""
        ignored = set(int(v) for v in ignore)
        if truth.ndim == 3:
            if not self.colour:
                raise ValueError("truth is a colour image; --truth-classes needs colours for it")
            rgb = truth[..., :3].astype(np.int64)
            codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            table = {(r << 16) | (g << 8) | b: c for (r, g, b), c in self.colour.items()}
            return _lookup(codes, table, ignored, colour=True)
        if not self.grey:
            return _check_indices(truth, ignored)
        return _lookup(truth.astype(np.int64), dict(self.grey), ignored, colour=False)


def _lookup(
    codes: np.ndarray, table: Mapping[int, int], ignored: set[int], colour: bool
) -> np.ndarray:
    values, inverse = np.unique(codes, return_inverse=True)
    mapped = np.empty(values.shape, dtype=np.int64)
    for k, v in enumerate(values.tolist()):
        if v in table:
            mapped[k] = table[v]
        elif v in ignored:
            mapped[k] = IGNORE
        else:
            shown = f"#{v:06x}" if colour else str(v)
            raise ValueError(f"truth value {shown} is not in --truth-classes (or use --ignore)")
    return mapped[inverse.reshape(codes.shape)]


def _check_indices(truth: np.ndarray, ignored: set[int]) -> np.ndarray:
    out = truth.astype(np.int64)
    if ignored:
        out[np.isin(out, list(ignored))] = IGNORE
    return out


def read_value_map(path: str, class_names: Sequence[str]) -> ValueMap:
    """A ``value,class`` CSV; classes are the store's names (case-insensitive) or ``ignore``."""
    by_name = {n.lower(): i for i, n in enumerate(class_names)}
    out = ValueMap()
    rows = _read_csv(path, ("value", "class"))
    for line, row in enumerate(rows, start=2):
        name = (row["class"] or "").strip()
        if name.lower() == "ignore":
            index = IGNORE
        elif name.lower() in by_name:
            index = by_name[name.lower()]
        else:
            raise UsageError(
                f"{path}:{line}: class {name!r} is not a class of the store "
                f"({', '.join(class_names)}) nor 'ignore'"
            )
        key = _parse_value(row["value"], path, line)
        if isinstance(key, tuple):
            out.colour[key] = index
        else:
            out.grey[key] = index
    return out


def _parse_value(text: str | None, path: str, line: int) -> int | tuple[int, int, int]:
    """A truth value of a ``--truth-classes`` row: a grey value (an integer; signed TIFFs may
    hold negative ones) or a colour (:func:`batchseg.render.parse_colour`: ``#rrggbb`` or
    ``r g b``, each 0-255)."""
    value = (text or "").strip()
    parts = value.split()
    if value.startswith("#") or len(parts) == 3:
        try:
            return parse_colour(parts if len(parts) == 3 else [value])
        except UsageError as exc:
            raise UsageError(f"{path}:{line}: value {value!r}: {exc}") from None
    if _GREY.fullmatch(value):
        return int(value)
    raise UsageError(
        f"{path}:{line}: value {value!r} is not a grey value (an integer), "
        "'#rrggbb' or 'r g b' (0-255)"
    )


#: A grey truth value: a decimal integer (no blanks inside).
_GREY = re.compile(r"-?[0-9]{1,12}")


#: Store classes that are void unless ``--void`` says otherwise (matched case-insensitively,
#: blanks and underscores around them ignored).
VOID_NAMES = ("void", "unlabelled", "unlabeled")


def void_classes(names: Sequence[str] | None, class_names: Sequence[str]) -> tuple[int, ...]:
    """Indices of the void classes: ``names`` (``["none"]``: no class), or by default the
    classes named as in :data:`VOID_NAMES`. UsageError for a name the store lacks."""
    keys = [n.strip().strip("_").strip().lower() for n in class_names]
    if names is None:
        return tuple(i for i, k in enumerate(keys) if k in VOID_NAMES)
    if [n.lower() for n in names] == ["none"]:
        return ()
    out = []
    for name in names:
        key = name.strip().strip("_").strip().lower()
        if key not in keys:
            raise UsageError(
                f"--void: {name!r} is not a class of the store ({', '.join(class_names)})"
            )
        out.append(keys.index(key))
    return tuple(sorted(set(out)))
