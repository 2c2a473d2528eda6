"""Issue 27 item 23: a store whose uris were recorded as spelled (``data/../data/imgs/a.png``,
before local uris were normalised) still resumes, and a new run records normalised uris."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr

from batchseg.cluster.profiles import AddressProfile
from batchseg.io import sources
from batchseg.job.prepare import prepare_job
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from tests.helpers.images import write_collection


def _stored_uris(out: Path) -> list[str]:
    return [str(u) for u in zarr.open_group(str(out), mode="r")["catalogue/uri"][:] if u]


@pytest.mark.integration
def test_store_with_unnormalised_uris_resumes(
    tmp_path: Path, cluster_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_collection(tmp_path / "data" / "imgs", n=3)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.zarr"

    def spec(spelled: str, **kw: object) -> JobSpec:
        profile = AddressProfile(cluster_address)
        return JobSpec(input=spelled, method="skimage.otsu", output=str(out), profile=profile, **kw)

    with monkeypatch.context() as old:  # the earlier version: uris kept the input's spelling
        old.setattr(sources, "local_uri", lambda path: str(Path(path).absolute()))
        first = run_job(spec("data/../data/imgs"))
    assert (first.done, first.failed) == (3, 0)
    recorded = _stored_uris(out)
    assert all("/data/../data/imgs/" in u for u in recorded)
    for spelled in ("data/../data/imgs", "data/imgs"):
        again = run_job(spec(spelled))  # the same images: resumed, not "another job"
        assert again.nothing_to_do and again.exit_code == 0, spelled
    assert _stored_uris(out) == recorded  # kept as stored
    appended = run_job(spec("data/imgs", append=True))
    assert (appended.images, appended.added) == (3, 0)

    fresh = run_job(spec("data/../data/imgs", overwrite=True))
    assert fresh.done == 3
    assert all(
        ".." not in u and u.startswith(str(tmp_path / "data" / "imgs")) for u in _stored_uris(out)
    )
    assert (
        prepare_job(spec("data/./imgs")).fingerprint == prepare_job(spec("data/imgs")).fingerprint
    )
