"""Issue 17 items 4, 5 and 8: lost chunks, flipped bits and edited status codes are damage.

Each test reproduces an attack of the issue on a real store: a deleted label shard file, single
bit flips in label chunk files, status codes edited to 9 or 0. Readers raise a StoreError
naming the image (never zeros, never changed labels, never a crash), ``verify`` reports and
marks the rows, and a rerun re-segments them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

import batchseg
from batchseg import store
from batchseg.cluster.profiles import AddressProfile
from batchseg.core.plan import Plan, plan_shards
from batchseg.errors import StoreError
from batchseg.io.sources import ImageRef
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from batchseg.measure.stats import region_stats, stats_columns
from batchseg.store import layout
from batchseg.store.table import table_group
from tests.helpers.cli import run_cli

COLUMNS = stats_columns("regions", None)
H, W, N, S = 12, 16, 6, 3


def _build(path: Path, *, zero: tuple[int, ...] = (), seed: int = 0) -> tuple[Plan, dict]:
    """A store of N done region maps (two shards of 3); rows in ``zero`` are all-zero maps."""
    refs = [ImageRef(f"img{i}.png", f"/data/img{i}.png") for i in range(N)]
    plan = plan_shards(refs, [(H, W)] * N, S)
    root = store.create(
        str(path),
        plan,
        meta={"method": {"id": "test", "kind": "regions"}, "classes": None},
        header_errors={},
        label_dtypes=[np.dtype(np.uint16)],
        stats_columns=COLUMNS,
        confidence=False,
    )
    store_id = store.attributes(root)["store_id"]
    rng = np.random.default_rng(seed)
    maps: dict[str, np.ndarray] = {}
    for shard in plan.shards:
        bucket = plan.buckets[shard.bucket]
        labels = np.zeros((bucket.shard_size, H, W), np.uint16)
        stats = np.full((S, len(COLUMNS)), np.nan)
        for slot, image_id in enumerate(shard.image_ids):
            row = shard.index * S + slot
            if row not in zero:
                labels[slot] = rng.integers(1, 40, (H, W), dtype=np.uint16)
            stats[slot] = [*region_stats(labels[slot]), 0.01]
            maps[image_id] = labels[slot].copy()
        status = np.full(S, store.DONE, np.int8)
        errors = np.full(S, "", dtype=object)
        block = store.ShardBlock(labels, None, stats, status, errors)
        store.write_shard(str(path), store_id, S, bucket, shard, block)
    store.consolidate(store.open_group(str(path), mode="r+"))
    return plan, maps


def _shard_file(path: Path, k: int) -> Path:
    (bucket,) = [p for p in (path / "labels").iterdir() if p.is_dir()]
    return bucket / "c" / str(k) / "0" / "0"


# ------------------------------------------------------------------ item 4: lost chunks


def test_deleted_label_shard_is_an_error_naming_the_image(tmp_path):
    out = tmp_path / "s.zarr"
    _, maps = _build(out)
    _shard_file(out, 1).unlink()  # images 3..5
    root = store.open_group(str(out))
    np.testing.assert_array_equal(store.read_labels(root, "img0.png"), maps["img0.png"])
    for i in range(3, 6):
        with pytest.raises(StoreError, match=rf"img{i}\.png.*missing"):
            store.read_labels(root, f"img{i}.png")
    report = store.verify(str(out), mark=False)
    assert report.checked == N and report.marked == 0
    assert report.damaged == [(f"img{i}.png", "label data missing") for i in range(3, 6)]
    assert batchseg.open(str(out)).status()["done"] == N  # nothing changed without mark
    report = store.verify(str(out))
    assert report.marked == 3
    status = batchseg.open(str(out)).status()
    assert (status["done"], status["pending"]) == (3, 3)
    assert not store.attributes(store.open_group(str(out)))["consolidated"]
    with pytest.raises(StoreError, match="img4.png.* is pending"):
        store.read_labels(store.open_group(str(out)), "img4.png")


def test_all_zero_maps_are_stored_so_absence_is_damage(tmp_path):
    out = tmp_path / "s.zarr"
    _build(out, zero=(0, 1, 2))  # a whole shard of empty maps is still written
    assert _shard_file(out, 0).is_file()
    root = store.open_group(str(out))
    assert not store.read_labels(root, "img1.png").any()
    assert store.verify(str(out), mark=False).damaged == []
    _shard_file(out, 0).unlink()
    with pytest.raises(StoreError, match="img1.png.*missing"):
        store.read_labels(root, "img1.png")


def _old_codecs(monkeypatch) -> None:
    """Create stores as batchseg did before checksums and stored empty chunks."""
    monkeypatch.setattr(layout, "label_codecs", lambda dtype: (layout.label_codec(dtype),))
    monkeypatch.setattr(layout, "table_codecs", lambda: (layout.table_codec(),))
    monkeypatch.setattr(layout, "text_codecs", lambda: (zarr.codecs.ZstdCodec(level=0),))


def test_older_stores_without_checksums_keep_reading(tmp_path, monkeypatch):
    _old_codecs(monkeypatch)
    out = tmp_path / "old.zarr"
    _, maps = _build(out, zero=(0, 1, 2))
    root = store.open_group(str(out), mode="r+")
    attrs = store.attributes(root)
    attrs.pop(store.CHUNKS_WRITTEN_KEY)
    root.attrs[store.ATTRS_KEY] = attrs
    meta = zarr.open_array(str(out), path="labels/" + attrs["buckets"][0]["name"]).metadata
    inner = meta.to_dict()["codecs"][0]["configuration"]["codecs"]
    assert [c["name"] for c in inner] == ["bytes", "blosc"]  # no chunk checksum
    for image_id, want in maps.items():
        np.testing.assert_array_equal(store.read_labels(root, image_id), want)
    assert (store.read_table(root)["status"] == "done").all()
    # an older store skipped all-zero shards: absent reads as zeros only where stats agree
    _shard_file(out, 0).unlink()
    assert not store.read_labels(root, "img0.png").any()  # n_regions 0: fine
    _shard_file(out, 1).unlink()
    with pytest.raises(StoreError, match="img4.png.*missing"):
        store.read_labels(root, "img4.png")  # its statistics say it had regions
    report = store.verify(str(out), mark=False)
    assert [d[0] for d in report.damaged] == ["img3.png", "img4.png", "img5.png"]


# ------------------------------------------------------------------ item 5: checksums


def test_every_single_bit_flip_in_label_chunks_is_detected(tmp_path):
    out = tmp_path / "s.zarr"
    _, maps = _build(out)
    rng = np.random.default_rng(17)
    ids = [f"img{i}.png" for i in range(N)]
    flips = 24
    for trial in range(flips):
        k = int(rng.integers(0, 2))
        path = _shard_file(out, k)
        original = path.read_bytes()
        data = bytearray(original)
        pos = int(rng.integers(0, len(data)))
        data[pos] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(data))
        try:
            root = store.open_group(str(out))
            raised = []
            for image_id in ids[k * S : (k + 1) * S]:
                try:
                    got = store.read_labels(root, image_id)
                except StoreError as exc:
                    assert image_id in str(exc) and "damaged" in str(exc)
                    raised.append(image_id)
                    continue
                np.testing.assert_array_equal(got, maps[image_id])  # never silently changed
            assert raised, f"flip {trial} at byte {pos} of shard {k} went unnoticed"
            report = store.verify(str(out), mark=False)
            assert {i for i, _ in report.damaged} == set(raised)
            assert all(r.startswith("checksum mismatch") for _, r in report.damaged)
        finally:
            path.write_bytes(original)
    assert store.verify(str(out), mark=False).damaged == []


def test_new_arrays_carry_a_crc32c_codec(tmp_path):
    out = tmp_path / "s.zarr"
    _build(out)
    root = zarr.open_group(str(out), mode="r")
    table = store.attributes(store.open_group(str(out)))["table_node"]
    for name in ("catalogue/status", "catalogue/error", "catalogue/image_id", "stats",
                 f"{table}/status", f"{table}/stats", f"{table}/uri"):  # fmt: skip
        codecs = root[name].metadata.to_dict()["codecs"]
        assert codecs[-1]["name"] == "crc32c", name
    (bucket,) = root["labels"].array_keys()
    inner = root[f"labels/{bucket}"].metadata.to_dict()["codecs"][0]["configuration"]["codecs"]
    assert [c["name"] for c in inner] == ["bytes", "blosc", "crc32c"]


# ------------------------------------------------------------------ item 8: status codes


def test_edited_status_codes_are_damage(tmp_path):
    out = tmp_path / "s.zarr"
    _build(out)
    root = zarr.open_group(str(out), mode="r+")
    status = root["catalogue/status"]
    status[1] = 9
    status[4] = 0  # "empty" on a real row
    store.invalidate_consolidated(store.open_group(str(out), mode="r+"))
    for consolidated in (False, True):
        if consolidated:
            store.consolidate(store.open_group(str(out), mode="r+"))
        view = batchseg.open(str(out))
        counts = view.status()
        assert (counts["done"], counts["pending"], counts["failed"]) == (4, 0, 0)
        assert counts["damaged"] == 2 and counts["damaged_images"] == ["img1.png", "img4.png"]
        table = view.table()
        assert list(table["status"].astype(str)) == ["done", "damaged", "done", "done",
                                                     "damaged", "done"]  # fmt: skip
        with pytest.raises(StoreError, match=r"img1.png.*damaged.*unknown status code 9"):
            view.mask("img1.png")
    assert store.needs_work(store.shard_status(store.open_group(str(out)))).tolist() == [
        False, True, False, False, True, False
    ]  # fmt: skip
    # an edited code in the consolidated table itself: read as damage, never a crash
    table_node = store.attributes(store.open_group(str(out)))["table_node"]
    root[f"{table_node}/status"][0] = 7
    assert batchseg.open(str(out)).status()["damaged"] == 3
    report = store.verify(str(out))
    assert report.damaged == [
        ("img1.png", "unknown status code 9"),
        ("img4.png", "unknown status code 0"),
    ]
    assert report.table_stale and report.marked == 2
    counts = batchseg.open(str(out)).status()
    assert (counts["done"], counts["pending"], counts["damaged"]) == (4, 2, 0)


# ------------------------------------------------------------------ end to end


def test_verify_then_rerun_repairs_lost_and_edited_rows(collection, tmp_path, cluster_address):
    out = tmp_path / "run.zarr"
    spec = JobSpec(
        input=str(collection),
        method="skimage.otsu",
        output=str(out),
        profile=AddressProfile(cluster_address),
        shard_size=4,
    )
    first = run_job(spec)
    assert first.exit_code == 0
    view = batchseg.open(str(out))
    ids = list(view.table()["image_id"])
    masks = {i: view.mask(i) for i in ids}
    root = zarr.open_group(str(out), mode="r")
    victim = ids[0]
    info = view.locate(victim)
    bucket = info.bucket["name"]
    shard = info.bucket_row // info.bucket["shard_size"]
    lost = out / "labels" / bucket / "c" / str(shard) / "0" / "0"
    lost.unlink()
    edited = ids[-1]
    zarr.open_group(str(out), mode="r+")["catalogue/status"][view.image(edited).row] = 9
    del root

    png = tmp_path / "m.png"
    res = run_cli("mask", str(out), victim, "--output", str(png), catch_exceptions=True)
    assert res.exit_code == 1 and victim in res.output and not png.exists()
    # the consolidated table predates the edit: verify finds it stale (and invalidates it)
    look = store.verify(str(out), mark=False)
    assert look.table_stale and look.marked == 0
    report = store.verify(str(out))
    assert report.damaged == look.damaged
    damaged = dict(report.damaged)
    assert damaged[victim] == "label data missing" and damaged[edited] == "unknown status code 9"
    assert report.marked == len(report.damaged) >= 2
    counts = batchseg.open(str(out)).status()
    assert counts["pending"] == report.marked and counts["damaged"] == 0

    second = run_job(spec)  # resume: re-segments the marked rows' shards only
    assert second.exit_code == 0 and 0 < second.processed < len(ids)
    view = batchseg.open(str(out))
    for image_id, want in masks.items():
        np.testing.assert_array_equal(view.mask(image_id), want)
    assert store.verify(str(out)).damaged == []

    # an edited code needs no verify: a plain rerun re-segments damaged rows
    zarr.open_group(str(out), mode="r+")["catalogue/status"][view.image(ids[1]).row] = 0
    assert store.needs_work(store.shard_status(store.open_group(str(out)))).sum() == 1
    third = run_job(spec)
    assert third.exit_code == 0 and 0 < third.processed < len(ids)
    view = batchseg.open(str(out))
    assert view.status()["done"] == len(ids)
    np.testing.assert_array_equal(view.mask(ids[1]), masks[ids[1]])


# ------------------------------------------------------------------ item 3: table switch


def test_legacy_table_reads_and_is_replaced_by_a_switch(tmp_path):
    """Stores consolidated before the switch (``table/``, no ``table_node``) keep reading; the
    next consolidation writes ``table-<id>/`` beside it, switches, then removes ``table/``."""
    out = tmp_path / "s.zarr"
    _build(out)
    root = store.open_group(str(out), mode="r+")
    attrs = store.attributes(root)
    (out / attrs.pop("table_node")).rename(out / "table")
    root.attrs[store.ATTRS_KEY] = attrs
    root = store.open_group(str(out), mode="r+")

    legacy = table_group(root)
    assert legacy is not None and legacy.basename == "table"
    assert list(store.read_table(root)["image_id"]) == [f"img{i}.png" for i in range(N)]
    assert not store.consolidate(root)  # valid: kept
    assert store.consolidate(root, force=True)
    node = store.attributes(root)["table_node"]
    assert node.startswith("table-") and not (out / "table").exists()
    assert (store.read_table(root)["status"] == "done").all()


def test_lost_chunk_of_the_consolidated_table_is_not_read_as_pending(tmp_path):
    out = tmp_path / "s.zarr"
    _build(out)
    root = store.open_group(str(out))
    node = store.attributes(root)["table_node"]
    (out / node / "status" / "c" / "0").unlink()  # would read as the fill value: pending
    counts = batchseg.open(str(out)).status()
    assert (counts["done"], counts["pending"]) == (N, 0)  # the per-shard arrays answer
    report = store.verify(str(out))
    assert report.table_stale and report.damaged == []
    assert store.consolidate(store.open_group(str(out), mode="r+"))
    assert batchseg.open(str(out)).status()["done"] == N


def test_export_of_an_image_with_lost_labels_fails_naming_it(tmp_path):
    from batchseg.export.ome_zarr import export_ome_zarr

    out = tmp_path / "s.zarr"
    _build(out)
    _shard_file(out, 0).unlink()
    target = tmp_path / "img1.ome.zarr"
    with pytest.raises(StoreError, match=r"img1\.png.*missing"):
        export_ome_zarr(str(out), "img1.png", target)
    assert not target.exists() and not list(tmp_path.glob(".img1.ome.zarr.tmp-*"))


def test_tiled_image_lost_tile_and_flipped_pyramid_bits(tmp_path):
    """A tiled image: a deleted tile or a flipped bit in a pyramid level is damage too."""
    out = tmp_path / "t.zarr"
    refs = [ImageRef("big.tif", "/data/big.tif")]
    plan = plan_shards(refs, [(600, 700)], 4, tile_threshold=1000, tile_size=256)
    (bucket,) = plan.buckets
    assert bucket.tile == 256
    root = store.create(
        str(out),
        plan,
        meta={"method": {"id": "test", "kind": "regions"}, "classes": None},
        header_errors={},
        label_dtypes=[np.dtype(np.uint32)],
        stats_columns=COLUMNS,
        confidence=False,
    )
    store_id = store.attributes(root)["store_id"]
    rng = np.random.default_rng(5)
    full = rng.integers(1, 1000, (600, 700), dtype=np.uint32)
    for y in range(0, 600, 256):
        for x in range(0, 700, 256):
            window = (slice(y, min(y + 256, 600)), slice(x, min(x + 256, 700)))
            store.write_tile(str(out), store_id, bucket, window, full[window])
    stats = np.full((4, len(COLUMNS)), np.nan)
    stats[0] = [*region_stats(full), 1.0]
    status = np.array([store.DONE, 0, 0, 0], np.int8)
    block = store.ShardBlock(None, None, stats, status, np.full(4, "", dtype=object))
    store.write_shard(str(out), store_id, 4, bucket, plan.shards[0], block)
    root = store.open_group(str(out))
    np.testing.assert_array_equal(store.read_labels(root, "big.tif"), full)
    np.testing.assert_array_equal(store.read_labels(root, "big.tif", level=1), full[::2, ::2])
    assert store.verify(str(out), mark=False).damaged == []

    level1 = out / "pyramid" / bucket.name / "1" / "c" / "0" / "0" / "0"
    original = level1.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x10
    level1.write_bytes(bytes(flipped))
    with pytest.raises(StoreError, match=r"big\.tif.*damaged"):
        store.read_labels(root, "big.tif", level=1)
    assert store.verify(str(out), mark=False).damaged == [
        ("big.tif", "checksum mismatch (pyramid level 1)")
    ]
    level1.write_bytes(original)

    (out / "labels" / bucket.name / "c" / "0" / "1" / "2").unlink()  # one tile
    with pytest.raises(StoreError, match=r"big\.tif.*missing"):
        store.read_labels(root, "big.tif")
    report = store.verify(str(out))
    assert report.damaged == [("big.tif", "label data missing")] and report.marked == 1
    assert batchseg.open(str(out)).status()["pending"] == 1
