"""Typed store metadata: a store's batchseg attributes parsed and validated once.

:meth:`StoreMeta.parse` turns the attribute mapping into frozen dataclasses (as zarr does with
its array metadata); a key that is missing or of the wrong type is one :class:`StoreError`
naming the store and the key. Code outside ``store/`` reads these fields, never raw keys.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchseg.core.kinds import Kind
from batchseg.errors import StoreError

log = logging.getLogger(__name__)

#: The store format this batchseg writes and reads (the ``schema_version`` attribute).
SCHEMA_VERSION = 1

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class MethodMeta:
    """The method that wrote the labels (``panoptic`` for a merge)."""

    id: str
    kind: Kind
    family: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BucketMeta:
    """One shape bucket: its images share a size and a label array."""

    index: int
    name: str
    height: int
    width: int
    shard_size: int
    n_shards: int
    dtype: str
    tile: int = 0  #: tile side of a tiled (huge-image) bucket, 0 otherwise
    levels: tuple[int, ...] = ()  #: downsampling factors of a tiled bucket's pyramid levels


@dataclass(frozen=True)
class StoreMeta:
    """Everything batchseg reads from a store's attributes, typed.

    ``raw`` keeps the whole mapping for provenance that is shown, not interpreted (job spec,
    versions, runs, sources).
    """

    path: str
    schema_version: int
    method: MethodMeta
    classes: tuple[str, ...]
    colours: tuple[Colour, ...]
    fingerprint: str
    store_id: str
    objects: bool
    shard_size: int
    n_shards: int
    n_images: int
    stats_columns: tuple[str, ...]
    buckets: tuple[BucketMeta, ...]
    is_thing: tuple[bool, ...] | None
    table_node: str | None
    consolidated: bool
    created: str
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def kind(self) -> Kind:
        """The stores's output kind."""
        return self.method.kind

    @property
    def published_rows(self) -> int:
        """Catalogue rows the shards cover (``n_shards * shard_size``)."""
        return self.n_shards * self.shard_size

    @property
    def runs(self) -> list[dict[str, Any]]:
        """The run records, oldest first."""
        return [dict(r) for r in self.raw.get("runs") or [] if isinstance(r, Mapping)]

    @property
    def appends(self) -> list[dict[str, Any]]:
        """The append records, oldest first."""
        return [dict(r) for r in self.raw.get("appends") or [] if isinstance(r, Mapping)]

    @property
    def evaluations(self) -> dict[str, Any]:
        """Stored evaluations by name (dataset values and their settings)."""
        ev = self.raw.get("evaluations")
        return dict(ev) if isinstance(ev, Mapping) else {}

    @property
    def job(self) -> dict[str, Any]:
        """The job spec as recorded (flags and spec keys)."""
        job = self.raw.get("job")
        return dict(job) if isinstance(job, Mapping) else {}

    @classmethod
    def parse(cls, attrs: Mapping[str, Any], path: str = "store") -> StoreMeta:
        """Validate ``attrs`` (the ``batchseg`` attributes of the store at ``path``)."""
        p = _Parser(attrs, path)
        version = p.integer("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{path} has store schema {version}; this batchseg reads {SCHEMA_VERSION}"
            )
        method = p.mapping("method")
        kind_name = p.text("method.kind", method.get("kind"))
        try:
            kind = Kind(kind_name)
        except ValueError:
            raise p.error("method.kind", f"unknown kind {kind_name!r}") from None
        classes = tuple(p.texts("classes", attrs.get("classes") or []))
        return cls(
            path=path,
            schema_version=version,
            method=MethodMeta(
                id=p.text("method.id", method.get("id")),
                kind=kind,
                family=str(method.get("family") or ""),
                params=dict(p.mapping("method.params", method.get("params", {}))),
            ),
            classes=classes,
            colours=p.colours(attrs.get("colours"), len(classes)),
            fingerprint=str(attrs.get("fingerprint") or ""),
            store_id=str(attrs.get("store_id") or ""),
            objects=bool(attrs.get("objects", False)),
            shard_size=p.integer("shard_size", minimum=1),
            n_shards=p.integer("n_shards", minimum=0),
            n_images=p.integer("n_images", minimum=0),
            stats_columns=tuple(p.texts("stats_columns", attrs.get("stats_columns") or [])),
            buckets=tuple(p.bucket(i, b) for i, b in enumerate(p.sequence("buckets"))),
            is_thing=_optional_bools(p, "is_thing", attrs.get("is_thing")),
            table_node=str(attrs["table_node"]) if attrs.get("table_node") else None,
            consolidated=bool(attrs.get("consolidated", False)),
            created=str(attrs.get("created") or ""),
            raw=dict(attrs),
        )


def _optional_bools(p: _Parser, key: str, value: Any) -> tuple[bool, ...] | None:
    if value is None:
        return None
    return tuple(bool(v) for v in p.sequence(key, value))


class _Parser:
    """Small typed readers that name the store and the key in their one-line errors."""

    def __init__(self, attrs: Mapping[str, Any], path: str) -> None:
        if not isinstance(attrs, Mapping):
            raise StoreError(f"{path}: malformed store attributes (not a mapping)")
        self.attrs, self.path = attrs, path

    def error(self, key: str, what: str) -> StoreError:
        return StoreError(f"{self.path}: malformed store attribute {key!r}: {what}")

    def _get(self, key: str, value: Any) -> Any:
        if value is _MISSING:
            if key not in self.attrs:
                raise self.error(key, "missing")
            return self.attrs[key]
        return value

    def integer(self, key: str, value: Any = None, *, minimum: int | None = None) -> int:
        value = self._get(key, _MISSING if value is None else value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"expected at least {minimum}, got {value}")
        return value

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a name, got {value!r}")
        return value

    def texts(self, key: str, value: Any) -> list[str]:
        items = self.sequence(key, value)
        if not all(isinstance(v, str) for v in items):
            raise self.error(key, "expected a list of names")
        return list(items)

    def mapping(self, key: str, value: Any = None) -> Mapping[str, Any]:
        value = self._get(key, _MISSING if value is None else value)
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping, got {type(value).__name__}")
        return value

    def sequence(self, key: str, value: Any = None) -> Sequence[Any]:
        value = self._get(key, _MISSING if value is None else value)
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise self.error(key, f"expected a list, got {type(value).__name__}")
        return value

    def bucket(self, i: int, value: Any) -> BucketMeta:
        key = f"buckets[{i}]"
        b = self.mapping(key, value)
        # the bucket of images whose header could not be read is 0x0 (core.plan.UNREADABLE)
        side = 0 if (b.get("height"), b.get("width")) == (0, 0) else 1
        try:
            return BucketMeta(
                index=self.integer(f"{key}.index", b.get("index", i), minimum=0),
                name=self.text(f"{key}.name", b.get("name")),
                height=self.integer(f"{key}.height", b.get("height"), minimum=side),
                width=self.integer(f"{key}.width", b.get("width"), minimum=side),
                shard_size=self.integer(f"{key}.shard_size", b.get("shard_size"), minimum=1),
                n_shards=self.integer(f"{key}.n_shards", b.get("n_shards"), minimum=0),
                dtype=self.text(f"{key}.dtype", b.get("dtype")),
                tile=self.integer(f"{key}.tile", b.get("tile", 0), minimum=0),
                levels=tuple(
                    self.integer(f"{key}.levels", v, minimum=1)
                    for v in self.sequence(f"{key}.levels", b.get("levels", ()))
                ),
            )
        except StoreError:
            raise
        except (TypeError, ValueError) as exc:  # pragma: no cover - defensive
            raise self.error(key, str(exc)) from None

    def colours(self, value: Any, n: int) -> tuple[Colour, ...]:
        """Stored class colours; a malformed list falls back to none (defaults) with a log."""
        if value is None:
            return ()
        ok = (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and all(
                isinstance(c, Sequence)
                and len(c) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
                for c in value
            )
        )
        if not ok:
            log.warning(
                "%s: stored class colours are malformed; using the default colours", self.path
            )
            return ()
        return tuple((int(c[0]), int(c[1]), int(c[2])) for c in value)


_MISSING: Any = object()
