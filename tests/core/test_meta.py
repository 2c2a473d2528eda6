"""Typed store metadata: parsed once, every malformed key one error naming store and key."""

from __future__ import annotations

import json
import logging

import pytest

from batchseg.core.kinds import Kind
from batchseg.core.meta import SCHEMA_VERSION, StoreMeta
from batchseg.errors import StoreError, UsageError
from tests.fixtures.make_compat_stores import KINDS, STORES


def _attrs(kind: str) -> dict:
    return json.loads((STORES / f"{kind}.zarr" / "zarr.json").read_text())["attributes"]["batchseg"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_compat_store_parses(kind: str) -> None:
    meta = StoreMeta.parse(_attrs(kind), f"{kind}.zarr")
    assert meta.schema_version == SCHEMA_VERSION
    assert meta.kind is Kind(kind if kind != "tiled" else "classes")
    assert sum(b.n_shards for b in meta.buckets) == meta.n_shards
    assert meta.published_rows >= meta.n_images > 0
    assert len(meta.stats_columns) > 0 and meta.fingerprint and meta.store_id
    assert meta.runs and meta.runs[-1]["processed"] >= 1
    if kind == "tiled":
        assert any(b.tile == 256 and b.levels == (1,) for b in meta.buckets)
    if meta.kind.class_map:
        assert len(meta.colours) == len(meta.classes) > 1


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"shard_size": "8"}, "'shard_size': expected an integer"),
        ({"shard_size": 0}, "'shard_size': expected at least 1"),
        ({"buckets": {"a": 1}}, "'buckets': expected a list"),
        ({"method": {"id": "x", "kind": "blobs"}}, "'method.kind': unknown kind 'blobs'"),
        ({"method": {"kind": "regions"}}, "'method.id': expected a name"),
        ({"classes": [1, 2]}, "'classes': expected a list of names"),
        ({"n_images": None}, "'n_images': missing"),
    ],
)
def test_malformed_attribute_is_one_line_naming_store_and_key(change: dict, key: str) -> None:
    attrs = {**_attrs("regions"), **change}
    if change.get("n_images", 0) is None:
        del attrs["n_images"]
    with pytest.raises(StoreError) as err:
        StoreMeta.parse(attrs, "x.zarr")
    text = str(err.value)
    assert text.startswith("x.zarr: malformed store attribute") and key in text
    assert "\n" not in text


def test_bucket_field_errors_name_the_bucket() -> None:
    attrs = _attrs("regions")
    attrs["buckets"][1]["height"] = -3
    with pytest.raises(StoreError, match=r"'buckets\[1\]\.height': expected at least 1"):
        StoreMeta.parse(attrs, "x.zarr")


def test_bucket_of_unreadable_images_parses() -> None:
    """A store with an image whose header could not be read has a 0x0 bucket (no array)."""
    attrs = _attrs("regions")
    attrs["buckets"][0].update(height=0, width=0)
    assert StoreMeta.parse(attrs, "x.zarr").buckets[0].height == 0
    attrs["buckets"][0].update(height=0, width=5)
    with pytest.raises(StoreError, match=r"'buckets\[0\]\.height': expected at least 1"):
        StoreMeta.parse(attrs, "x.zarr")


def test_other_schema_is_refused() -> None:
    with pytest.raises(StoreError, match="has store schema 99"):
        StoreMeta.parse({**_attrs("regions"), "schema_version": 99}, "x.zarr")


def test_bad_colours_fall_back_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    attrs = _attrs("classes")
    attrs["colours"] = [[-1, 0, 0]] * len(attrs["classes"])
    with caplog.at_level(logging.WARNING):
        meta = StoreMeta.parse(attrs, "x.zarr")
    assert meta.colours == ()
    assert [r.getMessage() for r in caplog.records] == [
        "x.zarr: stored class colours are malformed; using the default colours"
    ]


def test_kinds_carry_what_differs() -> None:
    assert [k for k in Kind if k.class_map] == [Kind.CLASSES]
    assert [k for k in Kind if k.object_scored] == [Kind.INSTANCES, Kind.PANOPTIC]
    assert not Kind.PANOPTIC.method_output and Kind.REGIONS.method_output
    assert not Kind.REGIONS.has_classes and Kind.INSTANCES.object_classes
    assert "coco" in Kind.INSTANCES.exports and "coco-panoptic" in Kind.PANOPTIC.exports
    assert {k.scorer for k in Kind} == {"regions", "pixels", "coco", "panoptic"}
    assert Kind.parse("classes") is Kind.CLASSES
    with pytest.raises(UsageError, match="unknown output kind 'blobs'; one of regions, classes"):
        Kind.parse("blobs")
