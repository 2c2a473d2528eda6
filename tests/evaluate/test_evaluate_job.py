"""``batchseg evaluate`` end to end on real stores and the session cluster."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import batchseg
from batchseg.cluster.profiles import AddressProfile
from batchseg.evaluate.metrics import boundary_scores, class_scores, confusion, region_scores
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from tests.helpers.cli import run_cli
from tests.helpers.images import png_chunk, short_png, write_collection
from tests.helpers.stores import snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    images = root / "images"
    write_collection(images, n=8, seed=3)
    out = {}
    for method, params in (("skimage.otsu", {}), ("skimage.slic", {"n_segments": 20})):
        path = root / f"{method.split('.')[1]}.zarr"
        spec = JobSpec(
            input=str(images), method=method, output=str(path), params=params,
            profile=AddressProfile(cluster_address),
        )  # fmt: skip
        assert run_job(spec).exit_code == 0
        out[method] = path
    out["images"] = images
    return out


def _class_truth(view: batchseg.StoreView, folder: Path, rng: np.random.Generator) -> dict:
    """Truth = the stored mask with some pixels flipped; grey 0/255 (mapped by a CSV);
    the last image has none."""
    ids = sorted(view.table()["image_id"])
    truths = {}
    for image_id in ids[:-1]:
        mask = view.mask(image_id).astype(np.uint8)
        flip = rng.random(mask.shape) < 0.2
        truth = np.where(flip, 1 - mask, mask)
        path = folder / Path(image_id).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((truth * 255).astype(np.uint8)).save(path)
        truths[image_id] = truth
    return truths


def test_class_maps_scored_into_table_and_attributes(stores, tmp_path, cluster_address):
    path = tmp_path / "otsu.zarr"
    import shutil

    shutil.copytree(stores["skimage.otsu"], path)
    view = batchseg.open(str(path))
    truths = _class_truth(view, tmp_path / "truth", np.random.default_rng(0))
    mapping = tmp_path / "map.csv"
    mapping.write_text("value,class\n0,background\n255,foreground\n")
    before = snapshot(path)
    result = run_cli(
        "evaluate", path, "--truth", tmp_path / "truth", "--truth-classes", mapping,
        "--scheduler", cluster_address, "--json",
    )  # fmt: skip
    assert result.exit_code == 3, result.output  # one image has no truth
    payload = json.loads(result.stdout)["eval"]
    assert len(payload["missing"]) == 1 and payload["images_scored"] == len(truths)
    total = sum(confusion(t, view.mask(i), 2) for i, t in truths.items())
    want = class_scores(total, ["background", "foreground"])
    assert payload["confusion_matrix"] == total.tolist()
    assert payload["miou"] == pytest.approx(want["miou"])
    assert payload["pixel_accuracy"] == pytest.approx(want["pixel_accuracy"])
    table = batchseg.open(str(path)).table().set_index("image_id")
    for image_id, truth in truths.items():
        one = class_scores(confusion(truth, view.mask(image_id), 2), ["b", "f"])
        assert table.loc[image_id, "eval_miou"] == pytest.approx(one["miou"])
        assert table.loc[image_id, "eval_iou_foreground"] == pytest.approx(one["iou"]["f"])
    assert np.isnan(table.loc[payload["missing"][0], "eval_miou"])
    # segmentation results are untouched: only the evaluation was added
    after = snapshot(path)
    assert after["attrs"].pop("evaluations").keys() == {"eval"}  # type: ignore[union-attr]
    assert after.keys() == before.keys() and after["attrs"] == before["attrs"]
    for key, value in before.items():
        got = after[key]
        if isinstance(value, tuple):
            value, got = value[1], got[1]  # type: ignore[index]
        np.testing.assert_array_equal(got, value, err_msg=key)
    worst = run_cli("query", path, "--where", "eval_miou < 2", "--sort", "eval_miou",
                    "--columns", "eval_miou", "--format", "csv")  # fmt: skip
    assert worst.exit_code == 0 and len(worst.stdout.splitlines()) == len(truths) + 1
    # a second name coexists; the same name again replaces
    again = run_cli("evaluate", path, "--truth", tmp_path / "truth", "--truth-classes", mapping,
                    "--name", "second", "--components", "foreground",
                    "--scheduler", cluster_address)  # fmt: skip
    assert again.exit_code == 3 and "miou" in again.stdout
    from skimage.measure import label

    image_id, truth = next(iter(truths.items()))
    cells = region_scores(label(truth == 1, connectivity=1),
                          label(view.mask(image_id) == 1, connectivity=1))  # fmt: skip
    row = batchseg.open(str(path)).table().set_index("image_id").loc[image_id]
    assert row["second_adapted_rand_error"] == pytest.approx(cells["adapted_rand_error"])
    assert set(batchseg.open(str(path)).evaluations()) == {"eval", "second"}
    shown = run_cli("evaluate", path, "--show", "--name", "second", "--json")
    assert set(json.loads(shown.stdout)) == {"second"}
    assert "second_miou" in batchseg.open(str(path)).columns()
    stats = json.loads(run_cli("stats", path, "--json").stdout)
    assert set(stats["evaluations"]) == {"eval", "second"}
    assert stats["evaluations"]["eval"]["miou"] == pytest.approx(want["miou"])
    assert "evaluation 'second'" in run_cli("stats", path).stdout


def test_bad_truth_is_reported_without_damage(stores, tmp_path, cluster_address):
    path = stores["skimage.otsu"]
    view = batchseg.open(str(path))
    image_id = sorted(view.table()["image_id"])[0]
    truth = tmp_path / "truth" / Path(image_id).with_suffix(".png")
    truth.parent.mkdir(parents=True)
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(truth)  # wrong size
    unlisted = run_cli("evaluate", path, "--truth", tmp_path / "truth",
                       "--scheduler", cluster_address)  # fmt: skip
    assert unlisted.exit_code == 3
    assert "never resized" in unlisted.output
    bad_map = tmp_path / "bad.csv"
    bad_map.write_text("value,class\n0,sky\n")
    refused = run_cli("evaluate", path, "--truth", tmp_path / "truth", "--truth-classes", bad_map)
    assert refused.exit_code == 2 and "class 'sky' is not a class of the store" in refused.output
    nothing = run_cli("evaluate", path, "--truth", tmp_path / "empty-folder-missing")
    assert nothing.exit_code == 2 and "truth not found" in nothing.output


def test_regions_against_several_annotators(stores, tmp_path, cluster_address):
    path = tmp_path / "slic.zarr"
    import shutil

    shutil.copytree(stores["skimage.slic"], path)
    view = batchseg.open(str(path))
    rng = np.random.default_rng(1)
    expected = {}
    for image_id in sorted(view.table()["image_id"]):
        pred = view.mask(image_id)
        h, w = pred.shape
        annotators = []
        for k in (1, 2):
            truth = np.arange(h)[:, None] // (6 * k) * 7 + np.arange(w)[None, :] // 9 + 1
            truth = truth.astype(np.uint8)
            stem = Path(image_id)
            out = tmp_path / "gt" / stem.parent / f"{stem.stem}_{k}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(truth).save(out)
            annotators.append({**region_scores(truth, pred), **boundary_scores(truth, pred)})
        expected[image_id] = {m: np.mean([a[m] for a in annotators]) for m in annotators[0]}
    result = batchseg.evaluate(
        path, truth=tmp_path / "gt", name="bsds", truth_pattern="{stem}_*.png",
        scheduler=cluster_address,
    )  # fmt: skip
    assert result.images_scored == len(expected) and not result.missing
    table = batchseg.open(str(path)).table().set_index("image_id")
    for image_id, want in expected.items():
        for metric in ("adapted_rand_error", "variation_of_information", "boundary_f"):
            assert table.loc[image_id, f"bsds_{metric}"] == pytest.approx(want[metric])
    mean_f = np.mean([w["boundary_f"] for w in expected.values()])
    assert result.metrics["boundary_f"] == pytest.approx(mean_f)
    del rng


def test_bad_truth_files_fail_alone(stores, tmp_path, cluster_address):
    """A half-row truth PNG, a FIFO and a 12000x12000 truth PNG (a few KB) each fail their
    image with the input side's reasons; an image whose id leads out of the truth folder is
    refused; the good one is scored."""
    path = tmp_path / "otsu.zarr"
    shutil.copytree(stores["skimage.otsu"], path)
    view = batchseg.open(str(path))
    ids = sorted(view.table()["image_id"])
    truth = tmp_path / "truth"
    files = {i: truth / Path(i).with_suffix(".png") for i in ids[:4]}
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
    h, w = view.mask(ids[0]).shape
    files[ids[0]].write_bytes(short_png(width=w, height=h, rows=h // 2))
    os.mkfifo(files[ids[1]])
    huge = struct.pack(">IIBBBBB", 12000, 12000, 8, 0, 0, 0, 0)
    files[ids[2]].write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", huge)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + png_chunk(b"IEND", b"")
    )  # fmt: skip
    Image.fromarray(view.mask(ids[3]).astype(np.uint8)).save(files[ids[3]])
    result = run_cli("evaluate", path, "--truth", truth, "--scheduler", cluster_address,
                     "--json")  # fmt: skip
    assert result.exit_code == 3, result.output
    got = json.loads(result.stdout)["eval"]
    assert got["images_scored"] == 1 and got["pixel_accuracy"] == 1.0
    failed = got["failed"]
    assert f"image data holds {h // 2} of {h} rows" in failed[ids[0]]
    assert "not a regular file" in failed[ids[1]]
    assert "is 12000x12000" in failed[ids[2]] and "never resized" in failed[ids[2]]


def test_region_store_against_truth_components(stores, tmp_path, cluster_address):
    """0/255 foreground truth: --truth-components 255 scores the regions against its
    4-connected components; --truth-classes, --components and --void name the right option."""
    from skimage.measure import label

    path = stores["skimage.slic"]
    view = batchseg.open(str(path))
    image_id = sorted(view.table()["image_id"])[0]
    pred = view.mask(image_id)
    h, w = pred.shape
    truth = np.zeros((h, w), np.uint8)
    truth[2 : h // 2 - 1, 2 : w // 2 - 1] = 255
    truth[h // 2 + 1 : h - 2, 3 : w - 3] = 255
    out = tmp_path / "gt" / Path(image_id).with_suffix(".png")
    out.parent.mkdir(parents=True)
    Image.fromarray(truth).save(out)
    result = run_cli("evaluate", path, "--truth", tmp_path / "gt", "--truth-components", 255,
                     "--name", "cells", "--scheduler", cluster_address, "--json")  # fmt: skip
    assert result.exit_code == 3, result.output  # the other images have no truth
    got = json.loads(result.stdout)["cells"]
    want = region_scores(label(truth == 255, connectivity=1), pred)
    assert got["truth_components"] == 255
    assert got["adapted_rand_error"] == pytest.approx(want["adapted_rand_error"])
    assert got["rand_recall"] == pytest.approx(want["rand_recall"])
    plain = region_scores(truth, pred)
    assert plain["adapted_rand_error"] != pytest.approx(want["adapted_rand_error"])
    mapping = tmp_path / "map.csv"
    mapping.write_text("value,class\n0,background\n255,foreground\n")
    for option, value, says in (
        ("--truth-classes", mapping, "--truth-components VALUE"),
        ("--components", "foreground", "--truth-components VALUE"),
        ("--void", "unlabelled", "--void is for class maps"),
    ):
        refused = run_cli("evaluate", path, "--truth", tmp_path / "gt", option, value)
        assert refused.exit_code == 2 and says in refused.output, refused.output
        assert "is not a class of the store ()" not in refused.output
