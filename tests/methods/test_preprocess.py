"""Issue 18 item 8: a preprocessing chain for any method, and region parameters for EM-like data.

Filters are compared pixel for pixel with direct scikit-image calls; new parameters at their
defaults must leave labels, recorded parameters and fingerprints exactly as before.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import exposure, feature, filters, measure, morphology, segmentation
from skimage.util import img_as_float

from batchseg.errors import UsageError
from batchseg.io.sources import ImageRef
from batchseg.job.fingerprint import fingerprint
from batchseg.job.spec import build_spec
from batchseg.methods import kernels, preprocess
from batchseg.methods.registry import get_method
from batchseg.methods.tiled import spec_for
from tests.helpers.cli import run_cli


def _grey(seed: int = 0, h: int = 64, w: int = 72) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random((h, w)), 3)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def _rgb(seed: int = 1) -> np.ndarray:
    return np.stack([_grey(seed + i) for i in range(3)], axis=-1)


DIRECT = {
    "gaussian:sigma=2": lambda x, c: filters.gaussian(x, sigma=2, channel_axis=-1 if c else None),
    "median:radius=2": lambda x, c: filters.median(
        x, footprint=morphology.disk(2)[..., None] if c else morphology.disk(2)
    ),
    "median": lambda x, c: filters.median(
        x, footprint=morphology.disk(1)[..., None] if c else morphology.disk(1)
    ),
    "rescale_intensity": lambda x, c: exposure.rescale_intensity(x),
    "rescale_intensity:low=2,high=98": lambda x, c: exposure.rescale_intensity(
        x, in_range=tuple(float(v) for v in np.percentile(x, (2, 98)))
    ),
    "clahe": lambda x, c: exposure.equalize_adapthist(x),
    "equalize_adapthist:clip_limit=0.03,kernel_size=16": lambda x, c: exposure.equalize_adapthist(
        x, kernel_size=16, clip_limit=0.03
    ),
    # per channel: scikit-image 0.26's channel_axis path is broken (see preprocess.unsharp_mask)
    "unsharp_mask:radius=3,amount=2": lambda x, c: (
        np.stack([filters.unsharp_mask(x[..., i], radius=3, amount=2) for i in range(3)], -1)
        if c
        else filters.unsharp_mask(x, radius=3, amount=2)
    ),
}


def assert_same_pixels(got: np.ndarray, expected: np.ndarray) -> None:
    """Bit-equal: same dtype, shape and every value."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("spec", sorted(DIRECT))
@pytest.mark.parametrize("colour", [False, True])
def test_each_filter_is_pixel_exact_with_scikit_image(spec, colour):
    image = _rgb() if colour else _grey()
    expected = DIRECT[spec](img_as_float(image), colour)
    got = preprocess.apply_chain(image, preprocess.parse_chain([spec]))
    assert_same_pixels(got, expected)


def test_chain_runs_in_order_and_alpha_is_dropped():
    rgba = np.dstack([_rgb(), np.full(_grey().shape, 7, np.uint8)])
    chain = preprocess.parse_chain(["gaussian:sigma=2", "clahe"])
    x = img_as_float(rgba[..., :3])
    expected = exposure.equalize_adapthist(filters.gaussian(x, sigma=2, channel_axis=-1))
    assert_same_pixels(preprocess.apply_chain(rgba, chain), expected)


def test_canonical_form_and_aliases():
    assert preprocess.parse_chain(["gaussian:sigma=2", "clahe"]) == [
        "gaussian:sigma=2.0",
        "equalize_adapthist:clip_limit=0.01,kernel_size=0,nbins=256",
    ]
    assert preprocess.parse_chain("Gaussian ; median:radius=3") == [
        "gaussian:sigma=1.0",
        "median:radius=3",
    ]
    chain = preprocess.parse_chain(["unsharp_mask:amount=2"])
    assert preprocess.parse_chain(chain) == chain  # canonical is a fixed point


@pytest.mark.parametrize(
    "bad, words",
    [
        ("gausian:sigma=2", "did you mean 'gaussian'"),
        ("gaussian:sigam=2", "no parameter 'sigam' (did you mean 'sigma'?)"),
        ("gaussian:sigma=-1", "must be >= 0"),
        ("gaussian:sigma=nan", "finite"),
        ("median:radius=1.5", "expects int"),
        ("gaussian:2", "KEY=VALUE"),
        ("rescale_intensity:low=90,high=10", "low must be below high"),
    ],
)
def test_bad_specs_are_one_line_usage_errors(bad, words):
    with pytest.raises(UsageError) as info:
        get_method("skimage.otsu").resolve_params({"pre": [bad]})
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("method_id", ["skimage.otsu", "skimage.watershed", "skimage.slic"])
def test_method_with_chain_equals_kernel_on_filtered_image(method_id):
    method = get_method(method_id)
    image = _grey(3, 96, 96)
    params = method.resolve_params({"pre": ["gaussian:sigma=2", "clahe"]})
    assert params["pre"][0] == "gaussian:sigma=2.0"
    filtered = exposure.equalize_adapthist(filters.gaussian(img_as_float(image), sigma=2))
    plain = {k: v for k, v in params.items() if k != "pre"}
    expected = method.kernel(filtered, **plain)
    np.testing.assert_array_equal(method.segment(image, params), expected)
    [seg] = method.runner(params).segment_batch([image])
    np.testing.assert_array_equal(seg.labels, expected)


def test_no_chain_keeps_params_and_fingerprint():
    refs = [ImageRef("a", "/x/a.png")]
    for method_id in ("skimage.otsu", "skimage.watershed"):
        method = get_method(method_id)
        params = method.resolve_params({})
        assert "pre" not in params and method.resolve_params({"pre": []}) == params
        with_pre = method.resolve_params({"pre": ["median"]})
        assert fingerprint(refs, method, with_pre) != fingerprint(refs, method, params)
    # the watershed's parameters before sigma/h/min_area existed: same identity
    method = get_method("skimage.watershed")
    old = {"threshold": "otsu", "min_distance": 5, "footprint": 0}
    assert method.resolve_params({}) == old
    assert method.resolve_params({"sigma": 0, "h": "0", "min_area": 0}) == old
    assert fingerprint(refs, method, method.resolve_params({})) == fingerprint(refs, method, old)
    assert fingerprint(refs, method, method.resolve_params({"min_area": 20})) != fingerprint(
        refs, method, old
    )


def test_spec_key_and_flag_fold_into_params():
    spec = build_spec({"input": "i", "method": "skimage.otsu", "output": "o", "pre": ["clahe"]})
    assert spec.params == {"pre": ["clahe"]}
    assert "pre" not in spec.to_dict()  # recorded with the parameters
    flagged = build_spec(
        {"input": "i", "method": "skimage.otsu", "output": "o", "pre": ["clahe"]},
        {"pre": ["median"], "params": {"x": "1"}},
    )
    assert flagged.params == {"pre": ["median"], "x": "1"}
    again = build_spec(spec.to_dict())
    assert again.params == spec.params


def test_tiled_images_refuse_a_chain_but_take_the_watershed_params():
    method = get_method("skimage.watershed")
    spec_for(method, method.resolve_params({}))  # the default still tiles
    with pytest.raises(UsageError, match="preprocessing chain"):
        spec_for(method, method.resolve_params({"pre": ["median"]}))
    # sigma, h and min_area have a tiled form (halo, merge step: tests/engine/tiled)
    spec_for(method, method.resolve_params({"sigma": 2, "h": 2, "min_area": 9}))


def _blobs_em(seed: int = 5) -> np.ndarray:
    """Noisy EM-like slice: bright cells with dark membranes and salt-and-pepper speckle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128]
    img = np.zeros((128, 128))
    for cy, cx in rng.integers(10, 118, (14, 2)):
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 120.0)
    img = img / img.max() + rng.normal(0, 0.25, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_watershed_sigma_h_min_area_match_direct_calls_and_cut_speckle():
    method = get_method("skimage.watershed")
    image = _blobs_em()
    default = method.segment(image, method.resolve_params({}))
    params = method.resolve_params({"sigma": 2, "h": 2, "min_area": 30})
    got = method.segment(image, params)
    # the same steps written out with scikit-image
    grey = filters.gaussian(img_as_float(image), sigma=2)
    mask = grey > filters.threshold_otsu(grey)
    distance = ndi.distance_transform_edt(mask)
    markers = measure.label(morphology.h_maxima(distance, 2) & mask)
    labels = segmentation.watershed(-distance, markers, mask=mask)
    labels = morphology.remove_small_objects(labels, max_size=29)
    labels = segmentation.relabel_sequential(labels)[0]
    np.testing.assert_array_equal(got, labels)
    assert np.array_equal(np.unique(got), np.arange(got.max() + 1))  # labels stay 1..n
    sizes = np.bincount(got.ravel())[1:]
    assert sizes.min() >= 30
    assert got.max() * 5 < default.max()  # far fewer regions than the speckle default
    # each parameter alone matches its direct call too
    peaks_only = kernels.distance_watershed(image, "otsu", 5, 0, sigma=2.0)
    mask2 = grey > filters.threshold_otsu(grey)
    d2 = ndi.distance_transform_edt(mask2)
    peaks = feature.peak_local_max(
        d2, min_distance=5, labels=measure.label(mask2), exclude_border=False
    )
    m2 = np.zeros(mask2.shape, np.int64)
    m2[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    np.testing.assert_array_equal(peaks_only, segmentation.watershed(-d2, m2, mask=mask2))


def test_cli_refuses_bad_chain_before_store_or_cluster(tmp_path, monkeypatch):
    from batchseg.cluster import connect as cluster_connect

    def refuse(*a, **k):
        raise AssertionError("cluster started")

    monkeypatch.setattr(cluster_connect, "connect", refuse)
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(_grey()).save(folder / "a.png")
    out = tmp_path / "o.zarr"
    result = run_cli("run", folder, "-m", "skimage.otsu", "-o", out, "--pre", "gausian:sigma=2")
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "did you mean 'gaussian'" in result.output
    assert not out.exists()
    toml = tmp_path / "job.toml"
    toml.write_text(
        f'input = "{folder}"\nmethod = "skimage.otsu"\noutput = "{out}"\npre = ["clahe:nbin=3"]\n'
    )
    result = run_cli("run", toml)
    assert result.exit_code == 2 and "did you mean 'nbins'" in result.output, result.output
    assert not out.exists()


@pytest.mark.integration
def test_run_records_chain_and_resume_refuses_another(tmp_path, cluster_address):
    from PIL import Image

    from batchseg import store

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_grey(i)).save(folder / f"{i}.png")
    out = tmp_path / "o.zarr"
    base = ["run", folder, "-m", "skimage.otsu", "-o", out, "--scheduler", cluster_address]
    first = run_cli(*base, "--pre", "gaussian:sigma=2", "--pre", "clahe")
    assert first.exit_code == 0, first.output
    attrs = store.attributes(store.open_group(str(out)))
    assert attrs["method"]["params"]["pre"] == [
        "gaussian:sigma=2.0",
        "equalize_adapthist:clip_limit=0.01,kernel_size=0,nbins=256",
    ]
    same = run_cli(*base, "--pre", "gaussian:sigma=2.0", "--pre", "equalize_adapthist")
    assert same.exit_code == 0, same.output
    other = run_cli(*base, "--pre", "gaussian:sigma=3")
    assert other.exit_code != 0 and "pre" in other.output, other.output


def test_colour_unsharp_mask_filters_every_channel_deterministically():
    """scikit-image 0.26's channel_axis path left ~95% of pixels unfiltered, plus garbage."""
    image = _rgb()
    chain = preprocess.parse_chain(["unsharp_mask:radius=3,amount=2"])
    first = preprocess.apply_chain(image, chain)
    assert np.mean(first == img_as_float(image)) < 0.5
    for _ in range(20):
        np.testing.assert_array_equal(preprocess.apply_chain(image.copy(), chain), first)
