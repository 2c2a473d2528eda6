"""``batchseg import``: the method and parameters of a job that imports label maps.

An import is a run of the method ``import.<kind>`` (:mod:`batchseg.methods.imported`) over
the images, whose parameters say where the label files are: the store's provenance (its
``method`` attribute) records the labels folder, the pattern and the value-to-class mapping,
and they are part of the job's fingerprint (another labels folder is another job).
"""

from __future__ import annotations

import csv
import os
from typing import Any

from batchseg.core.kinds import Kind
from batchseg.errors import UsageError
from batchseg.methods.imported import import_method_id


def import_params(
    labels: str, kind: str, classes: str | None = None, pattern: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The method id and parameters importing the label files of ``labels`` as ``kind``;
    UsageError for a folder that is not there or a ``classes`` CSV that cannot be used."""
    method_id = import_method_id(kind)
    if "://" in labels:
        raise UsageError(f"--labels must be a local folder, got {labels}")
    if not os.path.isdir(labels):
        raise UsageError(f"labels folder not found: {labels}")
    params: dict[str, Any] = {"labels": os.path.abspath(labels)}
    if pattern:
        params["pattern"] = pattern
    if classes is not None and not Kind(kind).class_map:
        raise UsageError(
            f"--classes is for --kind classes; {kind} label maps hold ids, not classes"
        )
    if Kind(kind).class_map:
        if classes is None:
            raise UsageError("--kind classes needs --classes CSV (value,class: each value's class)")
        params["values"] = read_classes_csv(classes)
    return method_id, params


def read_classes_csv(path: str) -> str:
    """A ``value,class`` CSV (grey values or colours ``#rrggbb`` / ``r g b``) as the
    ``values`` parameter ``value=class;...``; UsageError naming the file and line."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not rows or not {"value", "class"} <= set(rows[0]):
        raise UsageError(f"{path} needs the columns value,class")
    items: list[str] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        value, name = _value(row.get("value"), path, line), (row.get("class") or "").strip()
        if not name or any(c in name for c in ";="):
            raise UsageError(f"{path}:{line}: class {name!r} must be a name without ; or =")
        if value in seen:
            raise UsageError(f"{path}:{line}: value {value} is listed twice")
        seen.add(value)
        items.append(f"{value}={name}")
    return ";".join(items)


def _value(text: str | None, path: str, line: int) -> str:
    """A grey value or colour, spelled canonically (``12``, ``#ff0000``)."""
    value = (text or "").strip()
    try:
        if value.startswith("#") and len(value) == 7:
            return "#" + bytes.fromhex(value[1:]).hex()
        parts = value.split()
        if len(parts) == 3 and all(0 <= int(p) <= 255 for p in parts):
            return "#" + bytes(int(p) for p in parts).hex()
        if int(value) >= 0:
            return str(int(value))
    except ValueError:
        pass
    raise UsageError(f"{path}:{line}: value {value!r} is not an integer >= 0, '#rrggbb' or 'r g b'")
