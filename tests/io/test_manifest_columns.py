"""Tests for batchseg.io.manifest_columns: a CSV manifest read in bounded Arrow blocks into
columns gives the same images as the row-by-row reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchseg.core.refcolumns import RefColumns
from batchseg.io import manifest_columns, sources


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["path,width,height", *rows]) + "\n")
    return path


def _row_by_row(path: Path) -> list:
    """What the reader that makes one ImageRef per row finds (sorted as discover sorts)."""
    refs = sources._deduplicate(sources._read_csv(path, path.parent))  # noqa: SLF001 - the oracle
    return sorted(refs, key=lambda r: r.image_id)


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so that every manifest here spans several."""
    monkeypatch.setattr(manifest_columns, "BLOCK_BYTES", 160)


def test_absolute_paths_whose_common_folder_shrinks_in_a_later_block(tmp_path: Path) -> None:
    rows = [f"/data/x/deep/er/f{i % 3}/img{i}.png,{i + 1},{i + 2}" for i in range(30)]
    rows += [f"/data/x/other/img{i}.png,5,6" for i in range(10)]  # folder becomes /data/x
    rows += [f"/data/x/deep/a{i}.png,, " for i in range(5)]  # sizes not given
    manifest = _write(tmp_path / "m.csv", rows)
    found = sources.discover(str(manifest))
    assert isinstance(found, RefColumns)
    assert found.uri_prefix == "/data/x/"
    assert list(found) == _row_by_row(manifest)
    assert found[0].image_id == "deep/a0.png" and found[0].height is None


def test_relative_absolute_and_url_entries_keep_their_own_uris(tmp_path: Path) -> None:
    rows = [f"/abs/img{i}.png,1,2" for i in range(12)]
    rows += ["rel/img.png,1,2", "./dot.png,3,4", "s3://bucket/key.png,1,1", "  spaced.png ,4,4"]
    manifest = _write(tmp_path / "m.csv", rows)
    found = sources.discover(str(manifest))
    assert isinstance(found, RefColumns)
    assert list(found) == _row_by_row(manifest)


def test_relative_manifest_uris_are_the_folder_and_the_id(tmp_path: Path) -> None:
    rows = [f"cam{i % 2}/img{i:02d}.png,{8 + i},9" for i in range(20)]
    rows += ["cam1/img03.png,1,1"]  # a duplicate: the first entry is kept
    manifest = _write(tmp_path / "m.csv", rows)
    found = sources.discover(str(manifest))
    assert isinstance(found, RefColumns) and found.uris is None
    assert list(found) == _row_by_row(manifest)
    assert len(found) == 20
    assert found[found.ids.to_pylist().index("cam1/img03.png")].width == 11


def test_a_size_that_is_not_an_integer_is_named_by_the_row_reader(tmp_path: Path) -> None:
    manifest = _write(tmp_path / "m.csv", ["a.png,12,x"])
    assert manifest_columns.read_csv_columns(manifest, str(tmp_path)) is None
    with pytest.raises(sources.InputError, match="line 2"):
        sources.discover(str(manifest))
