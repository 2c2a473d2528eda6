"""Issue 16: ``run --append`` adds the new images of a grown input to an existing store.

Stored rows stay byte for byte (their label, statistics, status and object-table files are
compared before and after); new images of known shapes join their bucket as new shards, new
shapes and huge images get new buckets; a launcher killed while growing the store leaves the
old store readable and the rerun ends with the store of an uninterrupted append.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

import batchseg
from batchseg import store
from batchseg.cluster.profiles import AddressProfile
from batchseg.core.plan import UNREADABLE, extend_plan, plan_shards
from batchseg.errors import StoreError, UsageError
from batchseg.io import read as readers
from batchseg.io import sources
from batchseg.io.sources import ImageRef
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec, build_spec
from batchseg.methods import get_method
from batchseg.store import grow, layout
from batchseg.store.table import published_status
from tests.helpers.cli import run_cli
from tests.helpers.images import make_image
from tests.helpers.stores import assert_same_store

BATCHSEG = str(Path(sys.executable).with_name("batchseg"))
OTSU = get_method("skimage.otsu")


def _images(folder: Path, names: list[str], shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(make_image(rng, *shape, colour=False)).save(folder / name)


def _spec(folder: Path, out: Path, address: str, method: str = "skimage.otsu", **kw) -> JobSpec:
    kw.setdefault("shard_size", 3)
    return JobSpec(
        input=str(folder), method=method, output=str(out), profile=AddressProfile(address), **kw
    )


def _data_files(out: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file a task wrote: label, stats, status and error chunks,
    object-table parts (catalogue columns, metadata and the consolidated table excluded)."""
    found = {}
    for path in out.rglob("*"):
        rel = path.relative_to(out).as_posix()
        task_written = rel.startswith(("labels/", "stats/", "objects/", "pyramid/")) or (
            rel.startswith(("catalogue/status/", "catalogue/error/"))
        )
        if path.is_file() and task_written and path.name != "zarr.json":
            found[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return found


def _assert_old_rows_untouched(out: Path, before: dict, old_rows: dict) -> None:
    after = _data_files(out)
    assert {k: after.get(k) for k in before} == before  # same bytes, never rewritten
    root = zarr.open_group(str(out), mode="r")
    for name, values in old_rows.items():
        got = np.asarray(root[name][: len(values)])
        np.testing.assert_array_equal(got, values, err_msg=name)


def _old_rows(out: Path) -> dict[str, np.ndarray]:
    root = zarr.open_group(str(out), mode="r")
    names = [f"catalogue/{n}" for n in root["catalogue"].array_keys()] + ["stats"]
    return {n: np.asarray(root[n][:]) for n in names}


# --------------------------------------------------------------------------- plan and store


def test_extend_plan_keeps_shards_and_joins_or_adds_buckets():
    refs = [ImageRef(f"a{i}", f"/a{i}") for i in range(5)] + [ImageRef("s0", "/s0")]
    shapes = [(10, 10)] * 5 + [(20, 20)]
    old = plan_shards(refs, shapes, 2)  # (10,10): 3 shards of 2; (20,20): 1 shard of 1
    new = [ImageRef(f"b{i}", f"/b{i}") for i in range(3)] + [ImageRef("s1", "/s1")]
    new += [ImageRef(f"t{i}", f"/t{i}") for i in range(3)] + [ImageRef("u", "/u")]
    new += [ImageRef("huge", "/huge")]
    more = [(10, 10)] * 3 + [(20, 20)] + [(5, 7)] * 3 + [UNREADABLE] + [(3000, 4000)]
    plan = extend_plan(old, new, more, tile_threshold=10**6, tile_size=1024)
    assert plan.shards[: len(old.shards)] == old.shards  # indices, rows, buckets kept
    assert [s.index for s in plan.shards] == list(range(len(plan.shards)))
    by_id = {i: s for s in plan.shards for i in s.image_ids}
    ten = plan.buckets[0]
    assert (ten.height, ten.width, ten.shard_size, ten.n_shards) == (10, 10, 2, 5)
    assert [by_id[f"b{i}"].bucket_shard for i in range(3)] == [3, 3, 4]
    assert by_id["s1"].bucket == 1 and plan.buckets[1].n_shards == 2  # shard size 1 fits 1
    fives = plan.buckets[by_id["t0"].bucket]  # a new shape: a new bucket after the old ones
    assert fives.index >= len(old.buckets) and (fives.height, fives.width) == (5, 7)
    assert plan.buckets[by_id["u"].bucket].height == 0
    huge = plan.buckets[by_id["huge"].bucket]
    assert huge.tile == 1024 and huge.index == len(plan.buckets) - 1
    assert plan.n_images == 6 + 9
    # 3 new (20,20) images do not fit the old bucket's shards of 1: a second bucket of 2
    again = extend_plan(old, new[:1] + [ImageRef(f"v{i}", f"/v{i}") for i in range(3)],
                        [(10, 10)] + [(20, 20)] * 3)  # fmt: skip
    twenty = [b for b in again.buckets if (b.height, b.width) == (20, 20)]
    assert [(b.shard_size, b.n_shards) for b in twenty] == [(1, 1), (2, 2)]


def _store(tmp_path: Path, ids: list[str], shape=(10, 12), S: int = 2):
    refs = [ImageRef(i, f"/in/{i}") for i in ids]
    plan = plan_shards(refs, [shape] * len(refs), S)
    out = tmp_path / "s.zarr"
    meta = {"fingerprint": "x", "method": {"id": "skimage.otsu", "kind": "classes", "params": {}}}
    dtypes = [np.dtype(np.uint8)] * len(plan.buckets)
    root = layout.create(
        str(out), plan, meta=meta, header_errors={}, label_dtypes=dtypes,
        stats_columns=["a", "b"], confidence=False,
    )  # fmt: skip
    return out, root, plan, dtypes


def test_grown_rows_are_invisible_until_published_and_discarded_after_a_crash(tmp_path):
    out, root, plan, dtypes = _store(tmp_path, [f"i{k}" for k in range(5)])
    root["catalogue/status"][:5] = np.full(5, store.DONE, np.int8)
    store.consolidate(root)
    new = [ImageRef(n, f"/in/{n}") for n in ("j0", "j1", "broken")]
    grown = extend_plan(plan, new, [(10, 12), (30, 30), UNREADABLE])
    dtypes2 = dtypes + [np.dtype(np.uint8)] * (len(grown.buckets) - len(dtypes))
    grow.grow(root, plan, grown, header_errors={"broken": "bad header"}, label_dtypes=dtypes2)
    # not published: readers, plans and counts are the old store's
    assert root["catalogue/status"].shape[0] == grown.n_rows > plan.n_rows
    assert len(store.read_table(root)) == 5
    assert len(store.read_table(store.open_group(str(out)), include_empty=True)) == plan.n_rows
    assert store.load_plan(root) == plan
    assert published_status(root).size == plan.n_rows
    assert grow.discard_unpublished(root)
    assert root["catalogue/status"].shape[0] == plan.n_rows
    assert sorted(zarr.open_group(str(out))["labels"].array_keys()) == ["b00000_10x12"]
    assert not grow.discard_unpublished(root)
    # grown again and published: one attribute write makes the new rows visible
    grow.grow(root, plan, grown, header_errors={"broken": "bad header"}, label_dtypes=dtypes2)
    grow.publish(root, grown, dtypes2)
    assert store.load_plan(root) == grown
    table = store.read_table(root)  # the old consolidated table is stale: not used
    assert len(table) == 8
    status = dict(zip(table["image_id"], table["status"], strict=True))
    assert status["i0"] == "done" and status["j0"] == "pending" and status["broken"] == "failed"
    assert store.attributes(root)["buckets"][0]["n_shards"] == 4
    assert root["labels/b00000_10x12"].shape[0] == 8


# --------------------------------------------------------------------------- end to end


@pytest.mark.integration
def test_append_known_and_new_shapes_repeatedly(tmp_path, cluster_address):
    folder, out = tmp_path / "in", tmp_path / "out.zarr"
    _images(folder, [f"a{i}.png" for i in range(7)], (40, 50), seed=1)
    _images(folder, ["b0.png", "b1.png"], (30, 30), seed=2)
    spec = _spec(folder, out, cluster_address, "skimage.objects", tile_threshold=100_000,
                 tile_size=256)  # fmt: skip
    assert run_job(spec).done == 9
    before, old_rows = _data_files(out), _old_rows(out)
    assert any(k.startswith("objects/") for k in before)
    _images(folder, [f"c{i}.png" for i in range(4)], (40, 50), seed=3)  # a known shape
    _images(folder, ["d0.png"], (24, 36), seed=4)  # a new shape
    with pytest.raises(StoreError, match=r"\(5 images added\); use --append"):
        run_job(spec)
    first = run_job(spec.replace(append=True))
    assert (first.added, first.processed, first.done, first.gone) == (5, 5, 14, 0)
    _assert_old_rows_untouched(out, before, old_rows)
    assert run_job(spec).nothing_to_do  # the grown input is now the store's job
    # a second append: a huge tiled image (a new tiled bucket) and one of a known shape
    before, old_rows = _data_files(out), _old_rows(out)
    rng = np.random.default_rng(5)
    big = make_image(rng, 300, 520, colour=False)
    tifffile.imwrite(folder / "huge.tif", big, tile=(128, 128))
    _images(folder, ["e0.png"], (30, 30), seed=6)
    second = run_job(spec.replace(append=True))
    assert (second.added, second.processed, second.done) == (2, 2, 16)
    _assert_old_rows_untouched(out, before, old_rows)
    view = batchseg.open(str(out))
    buckets = view.attrs["buckets"]
    assert [(b["height"], b["width"], b.get("tile", 0)) for b in buckets] == [
        (30, 30, 0), (40, 50, 0), (24, 36, 0), (300, 520, 256)
    ]  # fmt: skip
    assert [a["added"] for a in view.attrs["appends"]] == [5, 2]
    table = view.table()
    assert len(table) == 16 and set(table["status"]) == {"done"}
    kernel, params = get_method("skimage.objects"), get_method("skimage.objects").resolve_params({})
    for image_id in ["a0.png", "c3.png", "d0.png", "e0.png"]:
        want = kernel.segment(readers.read_image(str(folder / image_id)), params)
        np.testing.assert_array_equal(view.mask(image_id), want)
    tiled = view.mask("huge.tif")  # stitched ids: equal to the whole-image map up to renaming
    whole = kernel.segment(big, params)
    assert tiled.shape == big.shape and np.array_equal(tiled > 0, whole > 0)
    assert len(np.unique(tiled)) == len(np.unique(whole))
    objects = view.objects(columns=["image_id", "label"])
    assert {"c0.png", "d0.png", "huge.tif"} <= set(objects["image_id"])
    assert len(view.query("n_regions >= 0")) == 16


@pytest.mark.integration
def test_removed_images_are_kept_and_reported(tmp_path, cluster_address):
    folder, out = tmp_path / "in", tmp_path / "out.zarr"
    _images(folder, [f"a{i}.png" for i in range(6)], (32, 32), seed=1)
    spec = _spec(folder, out, cluster_address)
    assert run_job(spec).done == 6
    masks = {f"a{i}.png": batchseg.open(str(out)).mask(f"a{i}.png") for i in (0, 1)}
    (folder / "a0.png").unlink()
    (folder / "a1.png").unlink()
    _images(folder, ["n0.png"], (32, 32), seed=2)
    base = ("run", folder, "-m", "skimage.otsu", "-o", out, "--shard-size", "3",
            "--scheduler", cluster_address)  # fmt: skip
    dry = run_cli(*base, "--append", "--dry-run", "--json")
    report = json.loads(dry.stdout)
    assert report["append"] and report["images"] == 1 and report["tasks"] == 1
    e = report["existing_store"]
    assert (e["new"], e["stored"], e["gone"], e["appendable"]) == (
        1, 6, ["a0.png", "a1.png"], True
    )  # fmt: skip
    text = run_cli(*base, "--append", "--dry-run").stdout
    assert "1 new image, 4 already stored, 2 stored images no longer" in text
    assert "gone: a0.png" in text
    refused = run_cli(*base)
    assert refused.exit_code == 1
    assert "1 image added; 2 images removed" in refused.output and "--append" in refused.output
    done = run_cli(*base, "--append")
    assert done.exit_code == 0, done.output
    assert "appended 1 new image" in done.output
    assert "2 stored images no longer in the input (kept in the store)" in done.output
    view = batchseg.open(str(out))
    assert view.attrs["appends"][-1]["gone"] == 2 and len(view.table()) == 7
    assert view.status()["gone_at_last_append"] == 2
    status = run_cli("status", out)
    assert "2 stored images no longer in the last append's input (kept)" in status.output
    for image_id, want in masks.items():  # still stored and readable
        np.testing.assert_array_equal(view.mask(image_id), want)
    again = run_cli(*base, "--append")
    assert "nothing to do" in again.output and "2 stored images no longer" in again.output


@pytest.mark.integration
def test_refusals_name_what_differs(tmp_path, cluster_address):
    folder, out = tmp_path / "in", tmp_path / "out.zarr"
    _images(folder, ["a.png", "b.png"], (32, 32), seed=1)
    spec = _spec(folder, out, cluster_address, "skimage.multiotsu", params={"classes": 3})
    assert run_job(spec).done == 2
    _images(folder, ["c.png"], (32, 32), seed=2)
    grown = spec.replace(append=True)
    with pytest.raises(StoreError, match=r"\(classes 3 -> 4\); an append must use the store's"):
        run_job(grown.replace(params={"classes": 4}))
    with pytest.raises(StoreError, match=r"\(method skimage.multiotsu -> skimage.otsu\)"):
        run_job(grown.replace(method="skimage.otsu", params={}))
    with pytest.raises(StoreError, match=r"classes 3 -> 4; 1 image added\); use --overwrite"):
        run_job(spec.replace(params={"classes": 4}))
    with pytest.raises(UsageError, match="--append adds .* --overwrite replaces"):
        build_spec({"input": "x", "method": "skimage.otsu", "output": "o"},
                   {"append": True, "overwrite": True})  # fmt: skip
    assert batchseg.open(str(out)).attrs["n_images"] == 2  # nothing written by a refusal


@pytest.mark.integration
def test_killed_append_leaves_the_old_store_and_the_rerun_equals_an_uninterrupted_one(
    tmp_path, cluster_address
):
    folder = tmp_path / "in"
    _images(folder, [f"a{i}.png" for i in range(6)], (40, 50), seed=1)
    out, ref = tmp_path / "out.zarr", tmp_path / "ref.zarr"
    assert run_job(_spec(folder, out, cluster_address, "skimage.felzenszwalb")).done == 6
    shutil.copytree(out, ref)
    _images(folder, [f"b{i}.png" for i in range(4)], (40, 50), seed=2)
    _images(folder, ["c0.png"], (20, 30), seed=3)
    reference = run_job(_spec(folder, ref, cluster_address, "skimage.felzenszwalb", append=True))
    assert reference.done == 11
    cmd = [BATCHSEG, "run", str(folder), "-m", "skimage.felzenszwalb", "-o", str(out),
           "--shard-size", "3", "--append", "--scheduler", cluster_address]  # fmt: skip
    killed = subprocess.run(cmd, env={**os.environ, "BATCHSEG_FAULT": "appending"},
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    root = zarr.open_group(str(out), mode="r")
    assert root["catalogue/status"].shape[0] > layout.published_rows(root.attrs["batchseg"])
    view = batchseg.open(str(out))  # a reader sees the old store, whole
    assert len(view.table()) == 6 and view.status()["done"] == 6
    with pytest.raises(StoreError, match="use --append"):
        run_job(_spec(folder, out, cluster_address, "skimage.felzenszwalb"))
    rerun = run_job(_spec(folder, out, cluster_address, "skimage.felzenszwalb", append=True))
    assert (rerun.added, rerun.processed, rerun.done) == (5, 5, 11)
    assert_same_store(out, ref)
    # crashed after publishing (rows of the append still pending): a plain rerun resumes
    rw = zarr.open_group(str(out), mode="r+")
    rw["catalogue/status"][9:12] = np.full(3, store.PENDING, np.int8)  # shard 3: b0..b2
    again = run_job(_spec(folder, out, cluster_address, "skimage.felzenszwalb"))
    assert again.processed == 3 and again.done == 11
    assert_same_store(out, ref)


@pytest.mark.integration
def test_stores_of_earlier_versions_resume_and_append(tmp_path, cluster_address, monkeypatch):
    """A store with whole-path manifest ids, no checksums, no stored empty chunks and a
    legacy ``table/`` node: resumed as before, then appended to with its own kind of ids."""
    folder = tmp_path / "in"
    _images(folder, ["a.png", "b.png", "c.png"], (32, 32), seed=1)
    manifest = tmp_path / "list.txt"
    manifest.write_text("".join(f"{folder / n}\n" for n in ("a.png", "b.png", "c.png")))
    out = tmp_path / "old.zarr"
    with monkeypatch.context() as m:  # how earlier versions wrote stores
        m.setattr(sources, "relative_manifest_ids", lambda refs: refs)
        m.setattr(layout, "table_codecs", lambda: (layout.table_codec(),))
        m.setattr(layout, "text_codecs", lambda: (zarr.codecs.ZstdCodec(level=0),))
        assert run_job(_spec(manifest, out, cluster_address)).done == 3
    root = zarr.open_group(str(out), mode="r+")
    attrs = dict(root.attrs["batchseg"])
    os.rename(out / attrs.pop("table_node"), out / "table")  # the legacy table node
    attrs.pop(store.CHUNKS_WRITTEN_KEY)
    root.attrs["batchseg"] = attrs
    assert run_job(_spec(manifest, out, cluster_address)).nothing_to_do
    before, old_rows = _data_files(out), _old_rows(out)
    _images(folder, ["d.png"], (32, 32), seed=2)
    manifest.write_text(manifest.read_text() + f"{folder / 'd.png'}\n")
    result = run_job(_spec(manifest, out, cluster_address, append=True))
    assert (result.added, result.gone, result.done) == (1, 0, 4)
    _assert_old_rows_untouched(out, before, old_rows)
    view = batchseg.open(str(out))
    assert list(view.table()["image_id"]) == [str(folder / f"{n}.png") for n in "abcd"]
    np.testing.assert_array_equal(
        view.mask(str(folder / "d.png")),
        OTSU.segment(readers.read_image(str(folder / "d.png")), {}),
    )
    assert run_job(_spec(manifest, out, cluster_address)).nothing_to_do
