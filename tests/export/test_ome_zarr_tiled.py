"""`batchseg export` of tiled images: window by window, equal to reading the image whole.

The tiled test images (700 x 1100, tiles of 256) are small enough to export whole too, so
every windowed export is compared, array by array, attribute by attribute and file by file,
with the in-memory path on the same store; reads are recorded to show none is bigger than a
few tiles.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image
from typer.testing import CliRunner

import batchseg
from batchseg import store
from batchseg.cli import app
from batchseg.cluster.profiles import AddressProfile
from batchseg.errors import StoreError
from batchseg.export import metadata as ngff
from batchseg.export import ome_zarr as export
from batchseg.export import pyramid
from batchseg.io import read as readers
from batchseg.io import windowed
from batchseg.job.run import run_job
from batchseg.job.spec import JobSpec
from tests.helpers.images import TILED_H as H  # the test images of tests/engine/tiled
from tests.helpers.images import TILED_THRESHOLD as THRESHOLD
from tests.helpers.images import TILED_TILE as TILE
from tests.helpers.images import TILED_W as W
from tests.helpers.images import blobs as _blobs

pytestmark = pytest.mark.integration

METHODS = ("skimage.objects", "skimage.otsu")


@pytest.fixture(scope="module")
def stores(tmp_path_factory, cluster_address) -> dict[str, Path]:
    """One region store (objects) and one class-map store (otsu) of two tiled images."""
    base = tmp_path_factory.mktemp("export_tiled")
    folder = base / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "grey.tif", _blobs(0, False), tile=(128, 128), compression="zlib")
    tifffile.imwrite(folder / "rgb.tif", _blobs(1, True), tile=(256, 256), photometric="rgb")
    Image.fromarray(_blobs(2, False)[:120, :160]).save(folder / "small.png")
    out = {}
    for method in METHODS:
        spec = JobSpec(
            input=str(folder),
            method=method,
            output=str(base / f"{method}.zarr"),
            profile=AddressProfile(cluster_address),
            tile_threshold=THRESHOLD,
            tile_size=TILE,
        )
        assert run_job(spec).exit_code == 0
        attrs = zarr.open_group(spec.output, mode="r").attrs["batchseg"]
        assert [b["levels"] for b in attrs["buckets"] if b.get("tile")] == [[1, 2], [1, 2]]
        out[method] = Path(spec.output)
    return out


def _files(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def _assert_same_export(windowed_out: Path, whole_out: Path) -> None:
    """Array by array, attribute by attribute, then every file byte for byte."""
    a, b = zarr.open_group(str(windowed_out), mode="r"), zarr.open_group(str(whole_out), mode="r")
    for group in ("", "labels", "labels/segmentation"):
        ga, gb = (a[group], b[group]) if group else (a, b)
        assert ga.attrs.asdict() == gb.attrs.asdict(), group
        assert sorted(ga.array_keys()) == sorted(gb.array_keys()), group
        for key in ga.array_keys():
            xa, xb = ga[key], gb[key]
            assert (xa.shape, xa.dtype, xa.chunks) == (xb.shape, xb.dtype, xb.chunks)
            np.testing.assert_array_equal(xa[...], xb[...], err_msg=f"{group}/{key}")
    fa, fb = _files(windowed_out), _files(whole_out)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        if name.endswith("zarr.json"):
            assert json.loads(fa[name]) == json.loads(fb[name]), name
        else:
            assert fa[name] == fb[name], name


@pytest.mark.parametrize(
    ("method", "image_id", "levels"),
    [
        ("skimage.objects", "rgb.tif", None),  # 4 levels: 1, 2 stored, 3 computed
        ("skimage.objects", "grey.tif", 6),  # 3..5 computed (down to 35 x 47)
        ("skimage.otsu", "rgb.tif", 2),  # fewer levels than stored
        ("skimage.otsu", "grey.tif", None),
    ],
)
def test_windowed_export_equals_whole_export(stores, tmp_path, method, image_id, levels):
    path = str(stores[method])
    got = export.export_ome_zarr(path, image_id, tmp_path / "w.zarr", levels=levels)
    whole = export._export(path, image_id, tmp_path / "m.zarr", levels=levels, windowed=False)
    n = export.default_levels(H, W) if levels is None else levels
    assert got == {**whole, "output": str(tmp_path / "w.zarr")}
    assert got["levels"] == n
    _assert_same_export(tmp_path / "w.zarr", tmp_path / "m.zarr")

    # and both are what the store holds: level k = mask[::2^k, ::2^k], level 0 = the source
    view = batchseg.open(path)
    mask = view.mask(image_id)
    root = zarr.open_group(str(tmp_path / "w.zarr"), mode="r")
    rgb = image_id == "rgb.tif"
    for k in range(n):
        lab = root["labels/segmentation"][str(k)][...]
        np.testing.assert_array_equal(lab[0] if rgb else lab, mask[:: 2**k, :: 2**k])
    source = readers.read_image(view.uri(image_id))
    np.testing.assert_array_equal(root["0"][...], np.moveaxis(source, -1, 0) if rgb else source)
    table = root["labels/segmentation"].attrs["ome"]["image-label"]["properties"]
    values, counts = np.unique(mask, return_counts=True)
    if view.kind == "regions":
        values, counts = values[1:], counts[1:]
        n_regions = int(view.table().set_index("image_id").loc[image_id, "n_regions"])
        assert root.attrs["batchseg"]["label_values_total"] == len(values) == n_regions
        # the grey image has more regions than are listed: the lowest ids are
        values, counts = values[: ngff.REGION_LIMIT], counts[: ngff.REGION_LIMIT]
    assert [p["label-value"] for p in table] == values.tolist()
    assert [p["pixels"] for p in table] == counts.tolist()


def test_ordinary_images_still_export_whole(stores, tmp_path, monkeypatch):
    """An image of the same store below the threshold takes the in-memory path."""
    opened = []
    monkeypatch.setattr(windowed, "open_source", lambda *a, **k: opened.append(a))
    path = str(stores["skimage.objects"])
    export.export_ome_zarr(path, "small.png", tmp_path / "s.zarr", levels=2)
    assert opened == []
    np.testing.assert_array_equal(
        zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["labels/segmentation/1"][...],
        batchseg.open(path).mask("small.png")[::2, ::2],
    )


class _Recorder:
    """A window source that records the pixels of every read."""

    def __init__(self, source: Any, sizes: list[tuple[int, int]]) -> None:
        self.source, self.sizes = source, sizes
        self.shape, self.windowed = source.shape, source.windowed

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        self.sizes.append((y1 - y0, x1 - x0))
        return self.source.read(y0, y1, x0, x1)


@pytest.mark.parametrize("image_id", ["rgb.tif", "grey.tif"])
def test_memory_is_bounded_by_tiles(stores, tmp_path, monkeypatch, image_id):
    source_reads: list[tuple[int, int]] = []
    zarr_reads: list[tuple[str, int]] = []
    open_source = windowed.open_source

    @contextlib.contextmanager
    def recording(uri: str, *args: Any, **kwargs: Any) -> Iterator[_Recorder]:
        with open_source(uri, *args, **kwargs) as source:
            assert source.windowed
            yield _Recorder(source, source_reads)

    getitem = zarr.Array.__getitem__

    def recording_getitem(self: zarr.Array, selection: Any) -> Any:
        out = getitem(self, selection)
        shape = np.shape(out)
        zarr_reads.append((self.path, int(np.prod(shape[-2:])) if len(shape) >= 2 else 1))
        return out

    def whole(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the whole image or label map was read")

    path = str(stores["skimage.objects"])
    root = store.open_group(path)
    name = store.attributes(root)["buckets"][
        int(store.read_array(root, "catalogue/bucket", store.find_row(root, image_id)))
    ]["name"]
    assert name.startswith("t")  # a tiled image's bucket
    monkeypatch.setattr(windowed, "open_source", recording)
    monkeypatch.setattr(zarr.Array, "__getitem__", recording_getitem)
    monkeypatch.setattr(readers, "read_image", whole)
    monkeypatch.setattr(store, "read_labels", whole)

    result = export.export_ome_zarr(path, image_id, tmp_path / "o.zarr", levels=5)
    assert result["levels"] == 5

    tiles = -(-H // TILE) * -(-W // TILE)
    assert len(source_reads) == 1 + tiles  # a 1 x 1 probe, then every tile once
    assert max(h * w for h, w in source_reads) <= TILE * TILE
    assert sum(h * w for h, w in source_reads[1:]) == H * W
    label_reads = [n for p, n in zarr_reads if p == f"labels/{name}"]
    assert len(label_reads) == tiles and sum(label_reads) == H * W
    # levels 1 and 2 come from the job's pyramid, not from level 0
    assert {p for p, _ in zarr_reads if p.startswith("pyramid/")} == {
        f"pyramid/{name}/1",
        f"pyramid/{name}/2",
    }
    biggest = max(n for _, n in zarr_reads)
    assert biggest <= 4 * TILE * TILE < H * W, biggest


def test_cli_export_and_viewers_read_it(stores, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05 import Image as NgffImage

    store_path = stores["skimage.otsu"]
    view = batchseg.open(str(store_path))
    for image_id, lead in (("rgb.tif", (3,)), ("grey.tif", ())):
        out = tmp_path / f"{image_id}.ome.zarr"
        result = CliRunner().invoke(
            app, ["export", str(store_path), image_id, "--output", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert f"image {'x'.join(map(str, (*lead, H, W)))} in 4 levels" in result.stdout
        assert f"({len(view.classes)} of {len(view.classes)} label values listed)" in result.stdout

        location = parse_url(str(out))
        assert location is not None
        nodes = list(Reader(location)())
        sizes = [(-(-H // 2**k), -(-W // 2**k)) for k in range(4)]
        assert [d.shape for d in nodes[0].data] == [(*lead, *s) for s in sizes]
        (seg,) = [n for n in nodes if n.zarr.basename() == "segmentation"]
        label_lead = (1,) if lead else ()
        assert [d.shape for d in seg.data] == [(*label_lead, *s) for s in sizes]
        assert seg.metadata["properties"][1]["class"] == view.classes[1]
        mask = view.mask(image_id)
        np.testing.assert_array_equal(np.asarray(seg.data[3]).reshape(sizes[3]), mask[::8, ::8])

        model = NgffImage.from_zarr(zarr.open_group(str(out), mode="r"))
        assert model.labels is not None and model.labels.label_paths == ["segmentation"]


def test_changed_source_is_refused(stores, tmp_path, monkeypatch):
    open_source = windowed.open_source
    path = str(stores["skimage.otsu"])

    class Cropped(_Recorder):
        def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            return self.source.read(y0, y1, x0, x1)[:, :-1]  # one column short

    @contextlib.contextmanager
    def smaller(uri: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with open_source(uri, *args, **kwargs) as source:
            fake = _Recorder(source, [])
            fake.shape = (H, W - 1)
            yield fake

    @contextlib.contextmanager
    def cropped(uri: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with open_source(uri, *args, **kwargs) as source:
            yield Cropped(source, [])

    monkeypatch.setattr(windowed, "open_source", smaller)
    with pytest.raises(StoreError, match=f"is {H}x{W - 1} but its labels are {H}x{W}"):
        export.export_ome_zarr(path, "grey.tif", tmp_path / "a.zarr")
    monkeypatch.setattr(windowed, "open_source", cropped)
    with pytest.raises(StoreError, match="changed after the run"):
        export.export_ome_zarr(path, "grey.tif", tmp_path / "a.zarr")
    assert list(tmp_path.iterdir()) == []  # nothing, not even a temporary folder


class _View:
    def __init__(self, kind: str, classes: list[str] | None = None) -> None:
        self.kind, self.classes, self.colours = kind, classes, None


def _blocks(labels: np.ndarray, step: int) -> ngff.LabelCounts:
    counts = ngff.LabelCounts()
    for ys, xs in pyramid.windows(labels.shape, (step, step)):
        counts.add(labels[ys, xs])
    return counts


def test_label_counts_by_block_equal_whole_counts():
    rng = np.random.default_rng(3)
    regions = rng.integers(0, 5000, (300, 400)).astype(np.uint32)
    regions[:50] = 0
    regions[100:120, 30:90] = (1 << 24) + 7  # ids beyond the bincount limit, in two blocks
    regions[250:260, 300:390] = (1 << 30) + 1
    values, counts = np.unique(regions, return_counts=True)
    for step in (64, 100, 1000):
        got_values, got_counts = _blocks(regions, step).values()
        np.testing.assert_array_equal(got_values, values)
        np.testing.assert_array_equal(got_counts, counts)
        view = _View("regions")
        assert ngff.label_table(view, _blocks(regions, step)) == ngff.label_table(
            view, ngff.LabelCounts.of(regions)
        )
    table = ngff.label_table(_View("regions"), _blocks(regions, 64))
    assert table[3] == len(values) - 1  # every id but 0
    assert [p["pixels"] for p in table[1]][-2:] == counts[-2:].tolist()

    classes = rng.integers(0, 3, (300, 400)).astype(np.uint8)
    classes[0, 0] = 4  # a value past the class names
    view = _View("classes", ["background", "foreground"])
    colors, properties, listed, total = ngff.label_table(view, _blocks(classes, 128))
    assert (listed, total) == (5, 5)
    names = ["background", "foreground", "class_2", "class_3", "class_4"]
    assert [p["class"] for p in properties] == names
    assert [p["pixels"] for p in properties] == np.bincount(classes.ravel()).tolist()
    assert (colors, properties) == ngff.label_table(view, ngff.LabelCounts.of(classes))[:2]


def test_value_range_by_window_equals_whole():
    rng = np.random.default_rng(5)
    image = rng.normal(0.5, 1.0, (40, 50, 3)).astype(np.float32)
    image[:20] = np.nan  # whole windows of NaN say nothing
    image[30, 7, 1] = np.inf
    for data in (image, np.full((40, 50, 3), np.nan, np.float32), image[..., :0]):
        tracker = ngff.RangeTracker(data.dtype)
        for ys, xs in pyramid.windows(data.shape[:2], (16, 16)):
            tracker.add(data[ys, xs])
        with warnings.catch_warnings():  # np.nanmin of all-NaN data warns
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = ngff.value_range(data)
        assert tracker.result() == expected
    tracker = ngff.RangeTracker(np.dtype(np.uint16))
    tracker.add(np.zeros((2, 2), np.uint16))
    assert tracker.result() == (0.0, 65535.0)
