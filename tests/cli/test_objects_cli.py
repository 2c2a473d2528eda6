"""``batchseg objects``: the per-object table from the command line.

The stores are real (``batchseg.store.create``: catalogue, stats, labels, the objects group);
their object parts are written with ``write_part`` as a worker writes them, so no cluster is
needed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batchseg import store
from batchseg.core.plan import plan_shards
from batchseg.io.sources import ImageRef
from batchseg.measure.stats import stats_columns
from batchseg.store.objects import object_schema, objects_frame, shard_part_name, write_part
from tests.helpers.cli import run_cli

EVIL = "evil\x1b[31m.png"  # an image id with a terminal escape sequence
ALL = object_schema().names


def make_store(path: Path, *, objects: bool) -> str:
    """A real, empty (all pending) store of four 8x8 images in two shards."""
    refs = [ImageRef(f"img_{i}.png", f"/data/img_{i}.png") for i in range(4)]
    plan = plan_shards(refs, [(8, 8)] * 4, 2)
    store.create(
        str(path),
        plan,
        meta={"method": {"id": "skimage.otsu"}, "classes": None},
        header_errors={},
        label_dtypes=[np.dtype(np.uint8)] * len(plan.buckets),
        stats_columns=stats_columns("regions", None),
        confidence=False,
        objects=objects,
    )
    return str(path)


def part(ids: list[str], areas: list[int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(ids)
    cols: dict[str, np.ndarray] = {
        "image_id": np.array(ids, dtype=object),
        "label": np.arange(1, n + 1),
        "area": np.array(areas),
    }
    for name in ALL[3:]:
        cols[name] = np.round(rng.uniform(0, 1, n), 3)
    for name in ALL[5:9]:  # the bounding box: integers
        cols[name] = rng.integers(0, 8, n)
    cols["mean_red"][0] = np.nan  # a grey image
    return cols


@pytest.fixture(scope="module")
def objects_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = make_store(tmp_path_factory.mktemp("objects") / "s.zarr", objects=True)
    write_part(path, shard_part_name(0), part(["img_0.png", "img_0.png", EVIL], [10, 900, 600], 0))
    write_part(path, shard_part_name(1), part(["img_2.png", "img_3.png"], [501, 20], 1))
    return path


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no folded headers


def _one_error(result, code: int, needle: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and needle in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_table_shows_key_columns_and_escapes_ids(objects_store):
    result = run_cli("objects", objects_store)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("image_id", "label", "area", "centroid_row", "centroid_col"):
        assert name in out
    assert "eccentricity" not in out and "mean_red" not in out
    assert "5 of 5 matching objects" in out and "--columns '*'" in out
    assert "\x1b" not in out and "evil\\x1b[31m.png" in out


def test_table_adds_the_where_columns_and_counts(objects_store):
    result = run_cli("objects", objects_store, "--where", "area > 500 and solidity >= 0")
    assert result.exit_code == 0, result.output
    assert "solidity" in result.stdout
    assert "3 of 3 matching objects (5 in store)" in result.stdout
    limited = run_cli("objects", objects_store, "-w", "area > 500", "--limit", "1")
    assert "1 of 3 matching objects (5 in store); more: --limit N" in limited.stdout


def test_csv_has_every_column_and_the_matching_rows(objects_store):
    result = run_cli("objects", objects_store, "--where", "area > 500", "--format", "csv")
    assert result.exit_code == 0, result.output
    got = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False, na_values=[""])
    want = objects_frame(objects_store, "area > 500")
    assert list(got.columns) == ALL
    assert got["area"].tolist() == want["area"].tolist() == [900, 600, 501]
    assert "\x1b" not in result.stdout and "evil\\x1b[31m.png" in result.stdout
    np.testing.assert_allclose(got["solidity"], want["solidity"])
    empty = run_cli("objects", objects_store, "-w", "area > 1e9", "-f", "csv", "-c", "label,area")
    assert empty.stdout == "label,area\n"


def test_json_records_and_columns(objects_store):
    result = run_cli("objects", objects_store, "-f", "json", "-c", "image_id,area,mean_*")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["area"] for r in records] == [10, 900, 600, 501, 20]
    assert list(records[0]) == ["image_id", "area", "mean_intensity", *ALL[-3:]]
    assert records[0]["mean_red"] is None and records[2]["image_id"] == EVIL
    assert "\x1b" not in result.stdout  # JSON escapes it
    none = run_cli("objects", objects_store, "-f", "json", "-w", "area < 0")
    assert json.loads(none.stdout) == []


def test_files_parquet_and_csv(objects_store, tmp_path):
    _one_error(run_cli("objects", objects_store, "-f", "parquet"), 2, "--output")
    target = tmp_path / "out" / "objects.parquet"
    result = run_cli("objects", objects_store, "-f", "parquet", "-o", target, "-w", "area > 500")
    assert result.exit_code == 0, result.output
    assert f"wrote {target}: 3 objects" in result.stdout
    table = pq.read_table(target)
    assert table.schema.names == ALL and table["area"].to_pylist() == [900, 600, 501]
    csv = tmp_path / "objects.csv"
    assert run_cli("objects", objects_store, "-f", "csv", "-o", csv, "-n", "2").exit_code == 0
    assert len(pd.read_csv(csv)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects.csv", "out"]  # no temp left


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-w", "aera > 1"], "did you mean 'area'"),
        (["-w", "area > 1 && label > 1"], "write 'and' instead of '&&'"),
        (["-w", "__import__('os').system('true')"], "function calls"),
        (["-c", "label,centroid_rwo"], "did you mean 'centroid_row'"),
        (["-f", "xml"], "--format must be table, csv, json or parquet"),
        (["-n", "-1"], "--limit must be >= 0"),
        (["-o", "x.csv"], "--output needs --format csv, json or parquet"),
    ],
)
def test_usage_errors_exit_2(objects_store, args, needle):
    _one_error(run_cli("objects", objects_store, *args), 2, needle)


def test_stores_without_objects_exit_1(tmp_path):
    _one_error(run_cli("objects", tmp_path / "missing.zarr"), 1, "no store at")
    plain = make_store(tmp_path / "plain.zarr", objects=False)
    _one_error(run_cli("objects", plain), 1, "the job ran without objects; run it with --objects")
    waiting = make_store(tmp_path / "waiting.zarr", objects=True)
    _one_error(run_cli("objects", waiting), 1, "no shard has written its objects")
