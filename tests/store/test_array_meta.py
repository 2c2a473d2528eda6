"""Issue 27 item 4: an edited array header never reads wrong.

``"endian": "little"`` turned ``"big"`` in a label array's ``zarr.json`` made ``mask`` return
values up to 3.7e9 with exit 0 and ``verify`` pass. The store records a digest of each array's
metadata; reads and ``verify`` compare. An older store without the record gets one from verify.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from batchseg import store
from batchseg.errors import StoreError
from batchseg.store.array_meta import META_KEY
from tests.helpers.cli import run_cli
from tests.helpers.object_stores import build_object_store


def _label_header(path: Path) -> Path:
    (bucket,) = [p for p in (path / "labels").iterdir() if p.is_dir()]
    return bucket / "zarr.json"


def test_an_edited_endianness_is_an_error_and_verify_reports_it(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    maps = build_object_store(out)
    header = _label_header(out)
    text = header.read_text()
    assert '"endian": "little"' in text
    header.write_text(text.replace('"endian": "little"', '"endian": "big"'))
    with pytest.raises(StoreError, match="zarr.json.*not what the store recorded"):
        store.read_labels(store.open_group(str(out)), "img0.png")
    result = run_cli("mask", str(out), "img0.png", "-o", str(tmp_path / "m.png"))
    assert result.exit_code == 1 and "not what the store recorded" in result.output
    assert not (tmp_path / "m.png").exists()
    checked = run_cli("verify", "--no-mark", str(out))
    assert checked.exit_code == 3
    assert "labels/" in checked.output and "no damage found" not in checked.output
    header.write_text(text)  # restored: reads as written
    got = store.read_labels(store.open_group(str(out)), "img0.png")
    assert np.array_equal(got, maps["img0.png"])


def test_an_older_store_without_the_record_reads_and_verify_records_it(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    maps = build_object_store(out)
    root = store.open_group(str(out), mode="r+")
    attrs = store.attributes(root)
    del attrs[META_KEY]
    root.attrs[store.ATTRS_KEY] = attrs  # as written before the record existed
    got = store.read_labels(store.open_group(str(out)), "img1.png")
    assert np.array_equal(got, maps["img1.png"])
    report = store.verify(str(out))
    assert report.metadata_recorded and not report.damaged and not report.metadata
    assert "labels/b00000_24x32" in store.attributes(store.open_group(str(out)))[META_KEY]


def _edit_shape(header: Path, shape: list[int]) -> None:
    meta = json.loads(header.read_text())
    meta["shape"] = shape
    header.write_text(json.dumps(meta))


def test_a_catalogue_cut_short_is_an_error_not_fewer_images(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    build_object_store(out)
    header = out / "catalogue" / "image_id" / "zarr.json"
    text = header.read_text()
    rows = json.loads(text)["shape"][0]
    _edit_shape(header, [3])  # zarr alone reads rows 0-2 and says nothing of the rest
    with pytest.raises(
        StoreError, match=r"catalogue/image_id.*shape \(3,\) where the store recorded"
    ):
        store.image_info(store.open_group(str(out)), "img5.png")
    checked = run_cli("verify", "--no-mark", str(out))
    assert checked.exit_code == 1 and "catalogue/image_id" in checked.output  # one line
    header.write_text(text)
    assert store.image_info(store.open_group(str(out)), "img5.png").row == 5
    assert store.attributes(store.open_group(str(out)))[META_KEY]["catalogue/image_id"].endswith(
        f"/{rows}"
    )


def test_statistics_with_another_column_count_are_an_error(tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    build_object_store(out)
    header = out / "stats" / "zarr.json"
    rows, columns = json.loads(header.read_text())["shape"]
    _edit_shape(header, [rows, columns - 1])
    with pytest.raises(StoreError, match="'stats'.*shape"):
        store.read_array(store.open_group(str(out)), "stats", slice(0, 6))


def test_a_record_without_shapes_reads_and_an_append_adds_them(tmp_path: Path) -> None:
    from batchseg.store.array_meta import record

    out = tmp_path / "s.zarr"
    maps = build_object_store(out)
    root = store.open_group(str(out), mode="r+")
    attrs = store.attributes(root)
    attrs[META_KEY] = {k: v.split("/")[0] for k, v in attrs[META_KEY].items()}  # digests only
    root.attrs[store.ATTRS_KEY] = attrs
    root = store.open_group(str(out))
    assert np.array_equal(store.read_labels(root, "img2.png"), maps["img2.png"])
    assert store.image_info(root, "img5.png").row == 5
    refreshed = record(root, attrs[META_KEY])
    assert all("/" in v for v in refreshed.values())
