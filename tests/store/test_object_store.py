"""Inputs and stores on an object store: S3 through s3fs, served by moto on loopback.

The whole pipeline runs against ``s3://`` URLs: discovery (prefix, glob, manifests), the job on a
real multi-process cluster whose workers read images from and write the store to S3, then
``status``, ``query``, ``mask --overlay`` and the Python API on the ``s3://`` store; the results
equal a local run on the same images. The secret key must never appear in any output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("s3fs", reason="s3fs is not installed (pip install '.[s3]')")
pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install '.[dev]')")

import batchseg  # noqa: E402
from batchseg.errors import StoreError  # noqa: E402
from batchseg.io.sources import discover  # noqa: E402
from batchseg.store.lock import FsspecStoreLock, store_lock  # noqa: E402
from tests.helpers.cli import run_cli  # noqa: E402
from tests.helpers.clusters import (  # noqa: E402
    dask_processes_cluster,
    free_port,
    wait_listening,
)
from tests.helpers.images import write_collection  # noqa: E402

pytestmark = pytest.mark.integration

BUCKET = "batchseg-test"
SECRET = "sEcReT-batchseg-0b1d4e7a9c"  # must never be printed or logged
N_IMAGES = 6  # two shards of --shard-size 4, all three shapes, colour and grey


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto S3 server with a bucket holding a collection and a manifest; AWS env set."""
    port = free_port()
    # its own process: an in-process server's request threads compete for this one's GIL
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_listening(port, server)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "batchseg-test-key")
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
            mp.delenv(name, raising=False)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir(BUCKET)
        local = tmp_path_factory.mktemp("s3src") / "images"
        write_collection(local, n=N_IMAGES)
        (local / "notes.txt").write_text("not an image")
        (local / ".hidden").mkdir()
        write_collection(local / ".hidden", n=1)
        fs.put(str(local), f"{BUCKET}/images", recursive=True)
        manifest = "# a manifest on S3: relative entries are resolved against its folder\n"
        manifest += "images/colour/img_000.png\n./images/grey/img_001.png\n"
        manifest += f"s3://{BUCKET}/images/colour/img_002.png\n"
        fs.pipe_file(f"{BUCKET}/manifest.txt", manifest.encode())
        fs.pipe_file(
            f"{BUCKET}/sized.csv",
            b"path,width,height\nimages/colour/img_000.png,64,48\nimages/grey/img_001.png,48,64\n",
        )
        try:
            yield {"fs": fs, "local": local, "endpoint": f"http://127.0.0.1:{port}"}
        finally:
            server.terminate()
            server.wait(timeout=30)
            s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3_cluster(s3: dict[str, Any]) -> Iterator[str]:
    """A fresh cluster (scheduler and worker processes) started after the AWS variables are set."""
    with dask_processes_cluster(2, nanny=False) as address:
        yield address


def _cli_hiding_secret(*args: str) -> Any:
    """The CLI (exceptions caught), and the secret key appears in none of its output."""
    result = run_cli(*args, catch_exceptions=True)
    assert SECRET not in result.output  # stdout and stderr
    return result


def test_discover_urls(s3):
    refs = discover(f"s3://{BUCKET}/images")
    assert len(refs) == N_IMAGES  # notes.txt and the hidden folder are skipped
    assert refs[0].image_id == "colour/img_000.png"
    assert refs[0].uri == f"s3://{BUCKET}/images/colour/img_000.png"
    assert [r.image_id for r in refs] == sorted(r.image_id for r in refs)
    assert discover(f"s3://{BUCKET}/images/") == refs
    grey = discover(f"s3://{BUCKET}/images/grey/*.png")
    assert [r.image_id for r in grey] == [
        r.image_id[len("grey/") :] for r in refs if r.image_id.startswith("grey/")
    ]
    assert all(r.uri.startswith(f"s3://{BUCKET}/images/grey/") for r in grey)
    listed = discover(f"s3://{BUCKET}/manifest.txt")
    assert [(r.image_id, r.uri) for r in listed] == [  # sorted by id, as written
        ("./images/grey/img_001.png", f"s3://{BUCKET}/images/grey/img_001.png"),
        ("images/colour/img_000.png", f"s3://{BUCKET}/images/colour/img_000.png"),
        (f"s3://{BUCKET}/images/colour/img_002.png", f"s3://{BUCKET}/images/colour/img_002.png"),
    ]
    sized = discover(f"s3://{BUCKET}/sized.csv")
    assert [(r.uri, r.height, r.width) for r in sized] == [
        (f"s3://{BUCKET}/images/colour/img_000.png", 48, 64),
        (f"s3://{BUCKET}/images/grey/img_001.png", 64, 48),
    ]
    single = discover(f"s3://{BUCKET}/images/grey/img_001.png")
    assert [(r.image_id, r.uri) for r in single] == [
        ("img_001.png", f"s3://{BUCKET}/images/grey/img_001.png")
    ]
    with pytest.raises(batchseg.errors.InputError, match="input not found"):
        discover(f"s3://{BUCKET}/nothing-here")


def test_lock_on_s3(s3):
    fs = s3["fs"]
    url = f"s3://{BUCKET}/locked.zarr"
    with store_lock(url) as held:
        assert isinstance(held, FsspecStoreLock) and held.active  # moto enforces If-None-Match
        assert json.loads(fs.cat_file(f"{BUCKET}/locked.zarr.lock"))["token"] == held.token
        with pytest.raises(StoreError, match="in use by another launcher"):
            store_lock(url).acquire()
    assert not fs.exists(f"{BUCKET}/locked.zarr.lock")
    # a lock whose heartbeat is old (another host) is stale and broken
    fs.pipe_file(
        f"{BUCKET}/locked.zarr.lock",
        json.dumps({"host": "elsewhere", "pid": 1, "token": "t", "beat": 0}).encode(),
    )
    with store_lock(url) as held:
        assert held.active
    assert not fs.exists(f"{BUCKET}/locked.zarr.lock")


@pytest.mark.system
def test_file_urls(s3, s3_cluster, tmp_path):
    local = s3["local"]
    out = f"file://{tmp_path}/file.zarr"
    result = _cli_hiding_secret(
        "run", f"file://{local}", "-m", "skimage.otsu", "-o", out, "--scheduler", s3_cluster
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "file.zarr" / "zarr.json").is_file()  # a plain local store
    assert not (tmp_path / "file.zarr.lock").exists()
    view = batchseg.open(out)
    assert set(view.table()["uri"].str[: len("file://")]) == {"file://"}
    assert len(view.table()) == N_IMAGES


def test_remove_store_keeps_its_lock_and_siblings(s3):
    from batchseg import store

    fs = s3["fs"]
    for key in ("gone.zarr/zarr.json", "gone.zarr/a/c/0", "gone.zarr.lock", "gone.zarr2/x"):
        fs.pipe_file(f"{BUCKET}/{key}", b"{}")
    assert store.path_exists(f"s3://{BUCKET}/gone.zarr")
    store.remove(f"s3://{BUCKET}/gone.zarr")
    assert not store.path_exists(f"s3://{BUCKET}/gone.zarr")
    assert fs.exists(f"{BUCKET}/gone.zarr.lock") and fs.exists(f"{BUCKET}/gone.zarr2/x")
    fs.rm([f"{BUCKET}/gone.zarr.lock", f"{BUCKET}/gone.zarr2/x"])


@pytest.mark.system
def test_run_on_s3_equals_local_run(s3, s3_cluster, tmp_path, capfd):
    fs = s3["fs"]
    store_url = f"s3://{BUCKET}/out.zarr"
    result = _cli_hiding_secret(
        "-v", "run", f"s3://{BUCKET}/images", "-m", "skimage.otsu", "-o", store_url,
        "--scheduler", s3_cluster, "--shard-size", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{N_IMAGES} done, 0 failed, 0 pending" in result.output
    assert fs.exists(f"{BUCKET}/out.zarr/zarr.json")
    assert not fs.exists(f"{BUCKET}/out.zarr.lock")  # released
    assert not (Path.cwd() / "s3:").exists()  # no local folder made for the URL

    local_out = tmp_path / "local.zarr"
    ref = _cli_hiding_secret(
        "run", str(s3["local"]), "-m", "skimage.otsu", "-o", str(local_out),
        "--scheduler", s3_cluster,
    )  # fmt: skip
    assert ref.exit_code == 0, ref.output

    remote, local = batchseg.open(store_url), batchseg.open(str(local_out))
    rt, lt = remote.table(), local.table()
    assert list(rt["image_id"]) == list(lt["image_id"]) and len(rt) == N_IMAGES
    assert set(rt["status"]) == {"done"}
    assert all(u.startswith(f"s3://{BUCKET}/images/") for u in rt["uri"])
    stats = [c for c in rt.columns if c.startswith(("pixels_", "fraction_"))]
    np.testing.assert_array_equal(rt[stats].to_numpy(), lt[stats].to_numpy())
    for image_id in rt["image_id"]:
        np.testing.assert_array_equal(remote.mask(image_id), local.mask(image_id))

    status = _cli_hiding_secret("status", store_url, "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["done"] == N_IMAGES
    query = _cli_hiding_secret(
        "query", store_url, "--where", "fraction_foreground >= 0", "--format", "json"
    )
    assert query.exit_code == 0, query.output
    rows = json.loads(query.stdout)
    assert sorted(r["image_id"] for r in rows) == sorted(rt["image_id"])
    png = tmp_path / "overlay.png"
    masked = _cli_hiding_secret("mask", store_url, "grey/img_001.png", "-o", str(png), "--overlay")
    assert masked.exit_code == 0, masked.output
    assert png.stat().st_size > 0

    # resume: nothing to do; --overwrite replaces the store under its lock (which survives)
    again = _cli_hiding_secret("run", f"s3://{BUCKET}/images", "-m", "skimage.otsu", "-o", store_url,
                 "--scheduler", s3_cluster)  # fmt: skip
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output
    fresh = _cli_hiding_secret("run", f"s3://{BUCKET}/images", "-m", "skimage.otsu", "-o", store_url,
                 "--scheduler", s3_cluster, "--overwrite")  # fmt: skip
    assert fresh.exit_code == 0 and f"{N_IMAGES} processed" in fresh.output, fresh.output
    assert batchseg.open(store_url).attrs["store_id"] != remote.attrs["store_id"]
    # another job on the same store is refused without --overwrite
    other = _cli_hiding_secret("run", f"s3://{BUCKET}/images", "-m", "skimage.li", "-o", store_url,
                 "--scheduler", s3_cluster)  # fmt: skip
    assert other.exit_code == 1 and "another job" in other.output

    # a manifest on S3 (relative and absolute entries)
    listed = _cli_hiding_secret("run", f"s3://{BUCKET}/manifest.txt", "-m", "skimage.otsu",
                  "-o", f"s3://{BUCKET}/manifest.zarr", "--scheduler", s3_cluster)  # fmt: skip
    assert listed.exit_code == 0, listed.output
    view = batchseg.open(f"s3://{BUCKET}/manifest.zarr")
    for image_id, local_id in [
        ("images/colour/img_000.png", "colour/img_000.png"),
        ("./images/grey/img_001.png", "grey/img_001.png"),
        (f"s3://{BUCKET}/images/colour/img_002.png", "colour/img_002.png"),
    ]:
        np.testing.assert_array_equal(view.mask(image_id), local.mask(local_id))

    captured = capfd.readouterr()  # worker processes and the launcher's own streams
    assert SECRET not in captured.out + captured.err
