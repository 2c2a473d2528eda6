"""batchseg.store.objects: per-object Parquet parts, written atomically, scanned with filters."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchseg.errors import QueryError, StoreError
from batchseg.query import filter_table
from batchseg.store import objects
from batchseg.store.objects import (
    count,
    dataset,
    expects_objects,
    has_objects,
    object_schema,
    objects_frame,
    remove_all,
    remove_parts,
    scan,
    shard_part_name,
    tiled_part_name,
    write_part,
)
from batchseg.store.paths import filesystem

FIXED = object_schema().names


def make_columns(seed: int, n: int, *, grey: bool = False) -> dict[str, np.ndarray]:
    """Random measurements of ``n`` objects spread over a few images."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {
        "image_id": np.array([f"img_{seed:02d}_{i % 3}.png" for i in range(n)], dtype=object),
        "label": np.arange(1, n + 1, dtype=np.int32),  # cast to int64 on write
        "area": rng.integers(1, 2000, n),
        "centroid_row": rng.uniform(0, 100, n),
        "centroid_col": rng.uniform(0, 100, n),
    }
    for name in ("bbox_min_row", "bbox_min_col"):
        cols[name] = rng.integers(0, 50, n)
    for name in ("bbox_max_row", "bbox_max_col"):
        cols[name] = cols[name.replace("max", "min")] + rng.integers(1, 50, n)
    for name in FIXED[9:17]:
        cols[name] = rng.uniform(0, 1, n)
    for name in ("mean_red", "mean_green", "mean_blue"):
        cols[name] = np.full(n, np.nan) if grey else rng.uniform(0, 255, n)
    return cols


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store location: a local folder or a ``memory://`` URL (parts need no Zarr store)."""
    if request.param == "local":
        yield str(tmp_path / "s.zarr")
        return
    url = f"memory://objects-test-{uuid.uuid4().hex}.zarr"
    yield url
    remove_all(url)


def _files(store: str) -> list[str]:
    """Every file name in the objects folder (temporary ones included)."""
    if "://" not in store:
        path = os.path.join(store, objects.OBJECTS)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    fs, folder = filesystem(store)
    target = f"{folder}/{objects.OBJECTS}"
    fs.invalidate_cache(target)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.find(target)) if fs.exists(target) else []


def test_part_names_and_schema():
    assert shard_part_name(42) == "part-000042.parquet"
    assert tiled_part_name(1234) == "part-t000001234.parquet"
    with pytest.raises(ValueError):
        shard_part_name(10**6)
    assert FIXED[:5] == ["image_id", "label", "area", "centroid_row", "centroid_col"]
    assert FIXED[-3:] == ["mean_red", "mean_green", "mean_blue"] and len(FIXED) == 20
    extra = object_schema({"class": pa.string(), "score": pa.float64()})
    assert extra.names == [*FIXED, "class", "score"]
    with pytest.raises(ValueError, match="fixed"):
        object_schema({"area": pa.float64()})


def test_write_and_read_back(store):
    write_part(store, shard_part_name(0), make_columns(0, 10))
    write_part(store, shard_part_name(1), make_columns(1, 7, grey=True))
    extra = {**make_columns(2, 3), "class": np.array(["cat", "dog", "cat"], dtype=object)}
    write_part(store, tiled_part_name(5), extra)
    assert has_objects(store)
    assert _files(store) == [
        "part-000000.parquet",
        "part-000001.parquet",
        "part-t000000005.parquet",
    ]  # no temporary file left
    data = dataset(store)
    assert data is not None and data.schema.names == [*FIXED, "class"]
    assert data.schema.field("label").type == pa.int64()
    table = scan(store)
    assert table.num_rows == 20 and count(store) == 20
    assert table["label"].to_pylist()[:3] == [1, 2, 3]  # part order, then row order
    frame = objects_frame(store, columns=["image_id", "mean_red", "class"])
    assert frame["mean_red"].iloc[10:17].isna().all()  # grey images
    assert frame["class"].iloc[:17].isna().all() and list(frame["class"].iloc[17:]) == [
        "cat",
        "dog",
        "cat",
    ]


def test_zero_rows_write_a_part_with_the_full_schema(store):
    write_part(store, shard_part_name(3), {})
    write_part(store, shard_part_name(4), {name: np.array([]) for name in ("image_id", "area")})
    data = dataset(store)
    assert data is not None and data.schema.names == FIXED
    assert count(store) == 0
    empty = scan(store, "area > 5", ["image_id", "area"])
    assert empty.num_rows == 0 and empty.schema.names == ["image_id", "area"]
    if "://" not in store:
        part = pq.read_table(os.path.join(store, objects.OBJECTS, shard_part_name(3)))
        assert part.num_rows == 0 and part.schema.names == FIXED


def test_a_failed_write_leaves_the_old_part_and_no_temporary_file(store, monkeypatch):
    name = shard_part_name(7)
    write_part(store, name, make_columns(7, 5))
    before = scan(store)

    def broken(table: pa.Table, where: Any, **kwargs: Any) -> None:
        if hasattr(where, "write"):
            where.write(b"PAR1 half a part")  # some bytes reach the file, then the writer dies
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(StoreError, match="disk full"):
        write_part(store, name, make_columns(8, 9))
    monkeypatch.undo()
    assert _files(store) == [name]
    assert scan(store).equals(before)


def test_rows_of_different_lengths_are_refused(store):
    with pytest.raises(ValueError, match="different lengths"):
        write_part(store, shard_part_name(0), {"area": np.arange(3), "label": np.arange(2)})
    with pytest.raises(ValueError, match="not an object part name"):
        write_part(store, "../escape.parquet", make_columns(0, 2))
    assert not has_objects(store)


def test_remove_parts_and_all(store):
    for i in range(3):
        write_part(store, shard_part_name(i), make_columns(i, 4))
    remove_parts(store, [shard_part_name(1), shard_part_name(9)])  # an absent one is fine
    assert _files(store) == [shard_part_name(0), shard_part_name(2)]
    assert count(store) == 8
    with pytest.raises(ValueError):
        remove_parts(store, ["../../labels"])
    assert not expects_objects(store + "-other")
    remove_all(store)
    assert not has_objects(store) and dataset(store) is None
    assert expects_objects(store)  # the folder stays (the store's zarr group may be there)
    with pytest.raises(StoreError, match="no shard has written its objects"):
        scan(store)


def test_remove_all_keeps_what_is_not_a_part(tmp_path):
    store = str(tmp_path / "s.zarr")
    folder = Path(store) / objects.OBJECTS
    with pytest.raises(StoreError, match="the job ran without objects; run it with --objects"):
        scan(store)
    write_part(store, shard_part_name(0), make_columns(0, 4))
    (folder / "zarr.json").write_text("{}")
    (folder / f".{shard_part_name(1)}.{uuid.uuid4().hex}.tmp").write_bytes(b"left by a kill")
    remove_all(store)
    assert sorted(os.listdir(folder)) == ["zarr.json"]


def test_temporary_files_are_not_parts(tmp_path):
    store = str(tmp_path / "s.zarr")
    write_part(store, shard_part_name(0), make_columns(0, 4))
    folder = Path(store) / objects.OBJECTS
    (folder / f".{shard_part_name(1)}.{uuid.uuid4().hex}.tmp").write_bytes(b"half")
    (folder / "part-000002.parquet.tmp").write_bytes(b"junk")
    (folder / "notes.txt").write_text("x")
    assert count(store) == 4


def test_a_damaged_part_is_a_store_error(tmp_path):
    store = str(tmp_path / "s.zarr")
    write_part(store, shard_part_name(0), make_columns(0, 4))
    (Path(store) / objects.OBJECTS / shard_part_name(1)).write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="cannot read the object tables"):
        scan(store)


def test_filters_columns_and_limits_match_pandas(store):
    frames = []
    for i in range(4):
        cols = make_columns(i, 50, grey=i == 2)
        write_part(store, shard_part_name(i), cols)
        frames.append(pd.DataFrame({k: list(v) for k, v in cols.items()}))
    everything = pd.concat(frames, ignore_index=True)
    for where in (
        "area > 500 and eccentricity < 0.8",
        "mean_red > 100 or mean_red != mean_red",
        "not (mean_red > 100)",
        "image_id in ('img_01_0.png', 'img_03_2.png') and bbox_max_row - bbox_min_row >= 25",
        "area // 100 % 3 == 1",
    ):
        want = filter_table(everything, where)
        got = objects_frame(store, where, columns=["label", "area", "image_id"])
        assert list(got.columns) == ["label", "area", "image_id"]
        assert got["label"].tolist() == want["label"].astype(int).tolist(), where
        assert count(store, where) == len(want)
    limited = scan(store, "area > 100", ["label"], limit=7)
    assert (
        limited["label"].to_pylist()
        == filter_table(everything, "area > 100")["label"][:7].astype(int).tolist()
    )
    assert scan(store, None, ["label"], limit=0).num_rows == 0


def test_unknown_columns_are_query_errors(store):
    write_part(store, shard_part_name(0), make_columns(0, 5))
    with pytest.raises(QueryError, match="did you mean 'area'"):
        scan(store, columns=["aera"])
    with pytest.raises(QueryError, match="did you mean 'eccentricity'"):
        scan(store, "eccentricty < 0.5")
    with pytest.raises(QueryError, match="function calls"):
        scan(store, "len(image_id) > 3")


class _Counting:
    """A dataset whose scanners count the batches read from them."""

    def __init__(self, data: Any, pulled: list[int]) -> None:
        self.data, self.pulled, self.schema = data, pulled, data.schema

    def scanner(self, **kwargs: Any) -> Any:
        inner, pulled = self.data.scanner(**kwargs), self.pulled

        class _Scanner:
            def to_batches(self) -> Iterator[pa.RecordBatch]:
                for batch in inner.to_batches():
                    pulled.append(batch.num_rows)
                    yield batch

        return _Scanner()


def test_a_limit_stops_reading_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "s.zarr")
    for i in range(8):
        write_part(store, shard_part_name(i), make_columns(i, 1000))
    pulled: list[int] = []
    real = objects.dataset
    monkeypatch.setattr(objects, "dataset", lambda s: _Counting(real(s), pulled))
    assert scan(store, "area > 0", ["label"], limit=5).num_rows == 5
    assert len(pulled) == 1  # one batch of the first part, nothing more
    pulled.clear()
    assert scan(store, "area > 0", ["label"]).num_rows == 8000
    assert len(pulled) >= 8
