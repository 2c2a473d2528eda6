"""Issue 27 item 4: an edited array header never reads wrong.

``"endian": "little"`` turned ``"big"`` in a label array's ``zarr.json`` made ``mask`` return
values up to 3.7e9 with exit 0 and ``verify`` pass. The store records a digest of each array's
metadata; reads and ``verify`` compare. An older store without the record gets one from verify.
"""

from __future__ import annotations

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
