"""Issue 27 items 2 and 7: object tables are checked on read; the README's readers work.

Attacks on a generated store (no cluster): seeded single-bit flips in a Parquet part, a deleted
part, a part that lost rows. ``store.objects()`` / ``objects_frame`` and ``batchseg objects``
either return exactly the written rows or fail naming the shard and ``batchseg verify``.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import batchseg
from batchseg import store
from batchseg.errors import StoreError
from tests.helpers.cli import run_cli
from tests.helpers.object_stores import build_object_store, part_file


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("objects") / "cells.zarr"
    build_object_store(out)
    return out


@pytest.fixture
def built(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the generated store (each test attacks its own)."""
    return Path(shutil.copytree(pristine, tmp_path / "cells.zarr"))


def test_bit_flips_in_a_part_never_read_wrong(built: Path) -> None:
    want = store.objects_frame(str(built))
    part = part_file(built, 0)
    original = part.read_bytes()
    rng = np.random.default_rng(27)
    loud = 0
    for bit in rng.choice(len(original) * 8, 24, replace=False):
        damaged = bytearray(original)
        damaged[bit // 8] ^= 1 << (bit % 8)
        part.write_bytes(bytes(damaged))
        try:
            got = store.objects_frame(str(built))
        except StoreError as exc:
            loud += 1
            assert "shard 0" in str(exc) and "batchseg verify" in str(exc), str(exc)
            continue
        assert got.equals(want), f"bit {bit}: rows changed without an error"
    part.write_bytes(original)
    assert loud >= 12  # most of the file is checksummed pages
    assert store.objects_frame(str(built)).equals(want)


def test_a_flipped_data_page_is_an_error_naming_the_shard(built: Path) -> None:
    part = part_file(built, 1)
    meta = pq.ParquetFile(part).metadata.row_group(0).column(3)  # centroid_row
    damaged = bytearray(part.read_bytes())
    damaged[meta.data_page_offset + meta.total_compressed_size // 2] ^= 0x10
    part.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match=r"shard 1\).*batchseg verify"):
        batchseg.open(str(built)).objects(columns=["image_id", "centroid_row"])
    result = run_cli("objects", str(built), "--format", "csv")
    assert result.exit_code == 1
    assert "shard 1" in result.output and "batchseg verify" in result.output


def test_a_deleted_part_is_an_error_and_verify_marks_its_rows(built: Path) -> None:
    part_file(built, 1).unlink()
    with pytest.raises(StoreError, match=r"object table missing: part-000001.parquet \(shard 1\)"):
        store.objects_frame(str(built))
    result = run_cli("objects", str(built), "--format", "csv")
    assert result.exit_code == 1 and "shard 1" in result.output
    report = store.verify(str(built))
    assert [reason for _, reason in report.damaged] == ["object table missing"] * 3
    assert report.marked == 3
    # the shard is pending now: no part is required until the rerun writes it
    assert len(store.objects_frame(str(built))) > 0


def test_a_part_with_fewer_rows_than_recorded_is_an_error(built: Path) -> None:
    part = part_file(built, 0)
    table = pq.read_table(part)
    pq.write_table(table.slice(0, table.num_rows - 1), part, write_page_checksum=True)
    with pytest.raises(StoreError, match=r"holds \d+ rows, the store recorded \d+"):
        store.objects_frame(str(built))
    report = store.verify(str(built), mark=False)
    assert {reason for _, reason in report.damaged} == {
        f"object table holds {table.num_rows - 1} rows, the store recorded {table.num_rows}"
    }


def test_readers_of_the_objects_guide_read_every_row(built: Path, monkeypatch) -> None:
    import duckdb
    import pandas as pd
    import polars as pl

    want = store.objects_frame(str(built))
    monkeypatch.chdir(built.parent)
    # the objects guide's one-liners, verbatim
    frame = pd.read_parquet(sorted(glob.glob("cells.zarr/objects/part-*.parquet")))
    assert frame.equals(want)
    lazy = pl.scan_parquet("cells.zarr/objects/part-*.parquet").filter(pl.col("area") > 500)
    assert lazy.collect().height == int((want["area"] > 500).sum())
    counts = duckdb.sql(
        "select image_id, count(*) from 'cells.zarr/objects/part-*.parquet' group by 1"
    ).fetchall()
    assert dict(counts) == want.groupby("image_id").size().to_dict()
    readme = (Path(__file__).parents[2] / "docs" / "guides" / "objects.md").read_text()
    assert 'pd.read_parquet(sorted(glob.glob("cells.zarr/objects/part-*.parquet")))' in readme
    assert 'pl.scan_parquet("cells.zarr/objects/part-*.parquet")' in readme
    assert "from 'cells.zarr/objects/part-*.parquet' group by 1" in readme
