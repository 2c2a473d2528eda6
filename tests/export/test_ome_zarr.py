"""`batchseg export --format ome-zarr`: OME-NGFF 0.5 pyramids of an image and its labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

import batchseg
from batchseg import render
from batchseg.cluster.profiles import AddressProfile
from batchseg.export.ome_zarr import default_levels
from batchseg.export.pyramid import block_mean, nearest
from batchseg.io import read as readers
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from tests.helpers.cli import run_cli
from tests.helpers.images import make_image, write_collection

pytestmark = pytest.mark.integration
RGB_ID, GREY_ID = "big/rgb.png", "big/grey.png"


@pytest.fixture(scope="module")
def stores(tmp_path_factory, cluster_address) -> dict[str, Path]:
    """One class-map store (otsu) and one region store (slic) of the same collection."""
    base = tmp_path_factory.mktemp("export")
    images = base / "images"
    write_collection(images, n=6)
    rng = np.random.default_rng(7)
    (images / "big").mkdir()
    Image.fromarray(make_image(rng, 300, 520, colour=True)).save(images / RGB_ID)
    Image.fromarray(make_image(rng, 257, 100, colour=False)).save(images / GREY_ID)
    (images / "broken.png").write_bytes(b"")
    out = {}
    for method, params in (("skimage.otsu", {}), ("skimage.slic", {"n_segments": 120})):
        store = base / f"{method}.zarr"
        result = run_job(
            JobSpec(
                input=str(images),
                method=method,
                output=str(store),
                params=params,
                profile=AddressProfile(cluster_address),
            )
        )
        assert result.done == 8 and result.failed == 1
        out[method] = store
    return out


def _ome_nodes(path: Path) -> list:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(str(path))
    assert location is not None
    return list(Reader(location)())


def _check_pyramids(out: Path, store: Path, image_id: str, levels: int) -> tuple[dict, dict]:
    """Plain zarr-python read-back: image and label pyramids; returns both groups' ome attrs."""
    view = batchseg.open(str(store))
    mask = view.mask(image_id)
    source = readers.read_image(view.uri(image_id))
    rgb = source.ndim == 3
    root = zarr.open_group(str(out), mode="r")
    ome = root.attrs.asdict()["ome"]
    assert ome["version"] == "0.5"
    (ms,) = ome["multiscales"]
    names = ["c", "y", "x"] if rgb else ["y", "x"]
    assert [a["name"] for a in ms["axes"]] == names
    assert [d["path"] for d in ms["datasets"]] == [str(k) for k in range(levels)]
    labels = root["labels"]
    assert labels.attrs.asdict()["ome"] == {"version": "0.5", "labels": ["segmentation"]}
    seg = labels["segmentation"]
    seg_ome = seg.attrs.asdict()["ome"]
    assert seg_ome["version"] == "0.5"
    assert [a["name"] for a in seg_ome["multiscales"][0]["axes"]] == names
    assert len(seg_ome["multiscales"][0]["datasets"]) == levels
    for k in range(levels):
        s = 2**k
        lead = [1.0] if rgb else []
        for group, meta in ((root, ms), (seg, seg_ome["multiscales"][0])):
            (scale,) = [
                t for t in meta["datasets"][k]["coordinateTransformations"] if t["type"] == "scale"
            ]
            assert scale["scale"] == [*lead, s, s]
            assert group[str(k)].metadata.dimension_names == tuple(names)
        # image: level 0 is the source (channel first), lower levels halve (ceil) each time
        img = root[str(k)]
        shape = (-(-source.shape[0] // s), -(-source.shape[1] // s))
        assert img.shape == ((3, *shape) if rgb else shape)
        assert img.dtype == source.dtype
        assert img.chunks[-2:] == tuple(min(256, n) for n in shape)
        # labels: nearest (stride) downsampling only, never interpolated values
        lab = seg[str(k)][...]
        lab2d = lab[0] if rgb else lab
        assert lab.shape == ((1, *shape) if rgb else shape)
        assert lab.dtype == mask.dtype
        np.testing.assert_array_equal(lab2d, mask[::s, ::s])
        assert set(np.unique(lab2d)) <= set(np.unique(mask))
    level0 = root["0"][...]
    np.testing.assert_array_equal(level0, np.moveaxis(source, -1, 0) if rgb else source)
    return ome, seg_ome


def test_class_map_rgb_export(stores, tmp_path):
    store = stores["skimage.otsu"]
    out = tmp_path / "rgb.ome.zarr"
    result = run_cli("export", store, RGB_ID, "--format", "ome-zarr", "--output", out)
    assert result.exit_code == 0, result.output
    assert "3 levels" in result.stdout
    # 520 -> 260 -> 130: the default stops at <= 256 px
    ome, seg_ome = _check_pyramids(out, store, RGB_ID, levels=3)
    assert ome["multiscales"][0]["name"] == RGB_ID
    assert [c["label"] for c in ome["omero"]["channels"]] == ["red", "green", "blue"]

    view = batchseg.open(str(store))
    mask = view.mask(RGB_ID)
    label = seg_ome["image-label"]
    assert label["version"] == "0.5" and label["source"] == {"image": "../../"}
    expected = render.palette(2, view.colours)
    assert label["colors"] == [
        {"label-value": i, "rgba": [*map(int, expected[i]), 255]} for i in range(2)
    ]
    row = view.table().set_index("image_id").loc[RGB_ID]
    assert [p["class"] for p in label["properties"]] == view.classes
    for p in label["properties"]:
        key = p["class"].lower()
        assert p["pixels"] == int(row[f"pixels_{key}"]) == int((mask == p["label-value"]).sum())
        assert p["fraction"] == pytest.approx(row[f"fraction_{key}"])

    # ome-zarr-py finds the image pyramid and, through labels/, the label image with metadata
    nodes = _ome_nodes(out)
    assert [d.shape for d in nodes[0].data] == [(3, 300, 520), (3, 150, 260), (3, 75, 130)]
    (seg,) = [n for n in nodes if n.zarr.basename() == "segmentation"]
    assert [d.shape for d in seg.data] == [(1, 300, 520), (1, 150, 260), (1, 75, 130)]
    assert seg.metadata["color"][1] == [c / 255 for c in [*expected[1], 255]]
    assert seg.metadata["properties"][1]["class"] == view.classes[1]
    np.testing.assert_array_equal(np.asarray(seg.data[0])[0], mask)

    # the NGFF 0.5 models (pydantic, from ome-zarr-models) accept the whole hierarchy
    from ome_zarr_models.v05 import Image as NgffImage

    model = NgffImage.from_zarr(zarr.open_group(str(out), mode="r"))
    assert model.labels is not None and model.labels.label_paths == ["segmentation"]


def test_region_grey_export(stores, tmp_path):
    store = stores["skimage.slic"]
    out = tmp_path / "grey.zarr"
    result = run_cli("export", store, GREY_ID, "--output", out)
    assert result.exit_code == 0, result.output
    # 257 -> 129: two levels, odd sizes rounded up, chunks cut at 256
    ome, seg_ome = _check_pyramids(out, store, GREY_ID, levels=2)
    assert "omero" not in ome
    root = zarr.open_group(str(out), mode="r")
    assert root["0"].chunks == (256, 100)

    mask = batchseg.open(str(store)).mask(GREY_ID)
    ids, counts = np.unique(mask[mask > 0], return_counts=True)
    label = seg_ome["image-label"]
    assert [c["label-value"] for c in label["colors"]] == ids.tolist()
    assert [c["rgba"][:3] for c in label["colors"]] == render.region_colours(ids).tolist()
    assert [p["pixels"] for p in label["properties"]] == counts.tolist()
    assert sum(p["fraction"] for p in label["properties"]) == pytest.approx(
        (mask > 0).sum() / mask.size
    )
    row = batchseg.open(str(store)).table().set_index("image_id").loc[GREY_ID]
    assert len(label["properties"]) == int(row["n_regions"])
    assert root.attrs["batchseg"]["label_values_total"] == len(ids)

    nodes = _ome_nodes(out)
    assert [d.shape for d in nodes[0].data] == [(257, 100), (129, 50)]
    (seg,) = [n for n in nodes if n.zarr.basename() == "segmentation"]
    assert set(seg.metadata["properties"]) == set(ids.tolist())
    np.testing.assert_array_equal(np.asarray(seg.data[1]), mask[::2, ::2])


def test_levels_option_and_small_images(stores, tmp_path):
    store = stores["skimage.slic"]
    small = "colour/img_000.png"  # 48 x 64: one level by default
    assert run_cli("export", store, small, "-o", tmp_path / "a.zarr").exit_code == 0
    seg = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["labels/segmentation"]
    assert list(seg.array_keys()) == ["0"]
    result = run_cli("export", store, small, "-o", tmp_path / "b.zarr", "--levels", "4")
    assert result.exit_code == 0, result.output
    _check_pyramids(tmp_path / "b.zarr", store, small, levels=4)  # 48x64 ... 6x8
    bad = run_cli("export", store, small, "-o", tmp_path / "c.zarr", "--levels", "0")
    assert bad.exit_code == 2 and "--levels" in bad.stderr
    assert not (tmp_path / "c.zarr").exists()


def test_errors_are_one_line(stores, tmp_path):
    store = stores["skimage.otsu"]
    out = tmp_path / "o.zarr"
    cases = [
        (("export", store, "nope.png", "-o", out), 1, "not in the store"),
        (("export", store, "broken.png", "-o", out), 1, "is failed"),
        (("export", store, RGB_ID, "-o", out, "--format", "tiff"), 2, "--format"),
        (("export", tmp_path / "missing.zarr", RGB_ID, "-o", out), 1, "no store"),
        (("export", store, RGB_ID, "-o", store), 1, "overlap"),
        (("export", store, RGB_ID, "-o", tmp_path / "no" / "x.zarr"), 1, "does not exist"),
    ]
    for args, code, needle in cases:
        result = run_cli(*args)
        assert result.exit_code == code, (args, result.output)
        assert needle in result.stderr and result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary folders left behind

    assert run_cli("export", store, GREY_ID, "-o", out).exit_code == 0
    again = run_cli("export", store, RGB_ID, "-o", out)
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert zarr.open_group(str(out), mode="r")["0"].shape == (257, 100)  # untouched
    assert run_cli("export", store, RGB_ID, "-o", out, "--overwrite").exit_code == 0
    assert zarr.open_group(str(out), mode="r")["0"].shape == (3, 300, 520)

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    refused = run_cli("export", store, RGB_ID, "-o", precious, "--overwrite")
    assert refused.exit_code == 1 and "not a Zarr group" in refused.stderr
    assert (precious / "notes.txt").read_text() == "keep me"


def test_export_metadata_is_plain_json(stores, tmp_path):
    """The zarr.json files hold the NGFF keys where a viewer looks (no ome-zarr-py involved)."""
    out = tmp_path / "m.zarr"
    assert run_cli("export", stores["skimage.otsu"], RGB_ID, "-o", out).exit_code == 0
    root = json.loads((out / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    assert set(root["attributes"]) == {"ome", "batchseg"}
    seg = json.loads((out / "labels" / "segmentation" / "zarr.json").read_text())
    assert set(seg["attributes"]["ome"]) == {"version", "multiscales", "image-label"}
    level = json.loads((out / "labels" / "segmentation" / "1" / "zarr.json").read_text())
    assert level["dimension_names"] == ["c", "y", "x"]


def test_downsampling_helpers():
    labels = np.arange(35, dtype=np.uint16).reshape(5, 7)
    np.testing.assert_array_equal(nearest(labels), labels[::2, ::2])
    image = np.array([[0, 255, 10], [255, 0, 10], [4, 4, 7]], dtype=np.uint8)
    np.testing.assert_array_equal(block_mean(image), [[128, 10], [4, 7]])
    rgb = np.full((3, 5, 5), 65535, dtype=np.uint16)
    assert block_mean(rgb).dtype == np.uint16 and (block_mean(rgb) == 65535).all()
    floats = np.array([[0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    assert block_mean(floats).tolist() == [[0.75]]
    assert default_levels(48, 64) == 1
    assert default_levels(300, 520) == 3
    assert default_levels(257, 100) == 2
    assert default_levels(1 << 20, 1 << 20) == 8
