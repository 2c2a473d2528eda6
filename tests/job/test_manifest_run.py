"""End to end: a CSV manifest with sizes runs from columns (no header read in the launcher),
with the store, results and resume of a listing of the same images."""

from __future__ import annotations

from pathlib import Path

import pytest

import batchseg
from batchseg.cluster.profiles import AddressProfile
from batchseg.core.refcolumns import RefColumns
from batchseg.io import read as readers
from batchseg.job.prepare import prepare_job
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec

pytestmark = pytest.mark.integration


def test_sized_manifest_runs_from_columns(
    collection: Path, tmp_path: Path, cluster_address: str
) -> None:
    rows = ["path,width,height"]
    for image in sorted(collection.rglob("*.png")):
        h, w = readers.read_header(str(image))
        rows.append(f"{image},{w},{h}")
    rows.append(f"{collection}/missing.png,8,8")  # sized, so planned; fails alone when read
    manifest = tmp_path / "list.csv"
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out.zarr"
    spec = JobSpec(
        input=str(manifest),
        method="skimage.otsu",
        output=str(out),
        profile=AddressProfile(cluster_address),
        shard_size=5,
    )
    assert isinstance(prepare_job(spec).refs, RefColumns)
    result = run_job(spec)
    assert (result.done, result.failed, result.pending) == (24, 1, 0)
    assert result.exit_code == 3
    table = batchseg.open(str(out)).table()
    assert set(table.loc[table["status"] == "failed", "image_id"]) == {"missing.png"}
    again = run_job(spec.replace(retry_failed=False))
    assert again.processed == 0
