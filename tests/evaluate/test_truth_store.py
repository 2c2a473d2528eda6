"""``evaluate --truth-store``: another store as the truth, scored exactly as a truth folder.

The issue's "done means": truth PNGs scored as a folder (``--truth``) and the same PNGs
imported as a store (``batchseg import``) and scored with ``--truth-store`` give equal
per-image columns and dataset values, for class maps and for region stores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import batchseg
from batchseg.errors import UsageError
from tests.helpers.images import write_collection

pytestmark = pytest.mark.integration

#: Keys of a stored evaluation that name the truth source (the rest must be equal).
SOURCE_KEYS = {"truth", "truth_store", "created"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, cluster_address: str) -> dict[str, Path]:
    """A class store (skimage.otsu) and a region store (skimage.slic) of one collection, and
    truth PNGs of each (the last image has none; one truth has the wrong size)."""
    root = tmp_path_factory.mktemp("truth_store")
    images = root / "images"
    write_collection(images, n=7, seed=5)
    out = {"images": images, "root": root}
    rng = np.random.default_rng(2)
    for method, params, name in (
        ("skimage.otsu", {}, "classes"),
        ("skimage.slic", {"n_segments": 12}, "regions"),
    ):
        path = root / f"{name}.zarr"
        result = batchseg.run(
            images, method=method, output=path, params=params, scheduler=cluster_address
        )
        assert result.exit_code == 0
        out[name] = path
        view = batchseg.open(str(path))
        folder = root / f"truth_{name}"
        ids = sorted(view.table()["image_id"])
        for k, image_id in enumerate(ids[:-1]):
            labels = view.mask(image_id).astype(np.int64)
            if name == "classes":  # some pixels flipped
                truth = np.where(rng.random(labels.shape) < 0.2, 1 - labels, labels)
            else:  # region ids merged in pairs, a few relabelled
                truth = (labels + 1) // 2 + (rng.random(labels.shape) < 0.05)
            if k == 2:
                truth = truth[:-3]  # wrong size: fails alike in both
            dest = folder / Path(image_id).with_suffix(".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(truth.astype(np.uint8)).save(dest)
        out[f"truth_{name}"] = folder
    return out


def _columns(path: Path, name: str) -> pd.DataFrame:
    table = batchseg.open(str(path)).table().set_index("image_id").sort_index()
    cols = [c for c in table.columns if c.startswith(f"{name}_")]
    return table[cols].rename(columns=lambda c: c[len(name) + 1 :])


def _compare(pair: dict[str, Path], kind: str, cluster: str, **import_options: object) -> None:
    store, folder = pair[kind], pair[f"truth_{kind}"]
    imported = pair["root"] / f"imported_{kind}.zarr"
    made = batchseg.import_labels(
        folder, images=pair["images"], output=imported, kind=kind, scheduler=cluster,
        **import_options,  # type: ignore[arg-type]
    )  # fmt: skip
    assert (made.done, made.failed) == (5, 2)  # no partner / wrong size: failed with why
    reasons = sorted(f.error for f in made.failures)
    assert reasons[0].startswith("label file") and "never resized" in reasons[0]
    assert reasons[1].startswith("no label file")
    by_folder = batchseg.evaluate(store, truth=folder, name="folder", scheduler=cluster)
    by_store = batchseg.evaluate(store, truth_store=imported, name="stored", scheduler=cluster)
    assert by_folder.images_scored == 5 and by_store.images_scored == 5
    assert len(by_folder.missing) + len(by_folder.failures) == 2
    assert len(by_store.missing) == 2  # the truth store's failed images have no truth
    a = {k: v for k, v in by_folder.metrics.items() if k not in SOURCE_KEYS}
    b = {k: v for k, v in by_store.metrics.items() if k not in SOURCE_KEYS}
    a.pop("images_failed"), b.pop("images_failed"), a.pop("images_without_truth")
    b.pop("images_without_truth")
    assert a.keys() == b.keys()
    for key, value in a.items():  # dataset means: equal up to the order of summation
        assert b[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value)
    assert by_store.metrics["truth_store"] == str(imported)
    left = _columns(store, "folder").dropna(how="all")
    right = _columns(store, "stored").dropna(how="all")
    assert len(left) == 5
    pd.testing.assert_frame_equal(left, right, check_exact=True)


def test_class_store_against_imported_truth_equals_folder_truth(
    pair: dict[str, Path], cluster_address: str, tmp_path: Path
) -> None:
    csv = tmp_path / "classes.csv"
    classes = batchseg.open(str(pair["classes"])).classes or []
    csv.write_text("value,class\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes)))
    _compare(pair, "classes", cluster_address, classes=csv)


def test_region_store_against_imported_truth_equals_folder_truth(
    pair: dict[str, Path], cluster_address: str
) -> None:
    _compare(pair, "regions", cluster_address)


def test_truth_store_refusals(pair: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="--truth or --truth-store"):
        batchseg.evaluate(pair["classes"], truth=pair["truth_classes"], truth_store=pair["regions"])
    with pytest.raises(UsageError, match="holds regions labels"):
        batchseg.evaluate(pair["classes"], truth_store=pair["regions"])
    with pytest.raises(UsageError, match="--truth-pattern: not used with --truth-store"):
        batchseg.evaluate(pair["regions"], truth_store=pair["classes"], truth_pattern="{stem}.png")
