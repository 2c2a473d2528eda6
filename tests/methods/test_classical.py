"""Classical methods: every kernel equals its scikit-image/SciPy/scikit-learn recipe."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import color, data, feature, filters, measure, segmentation
from skimage.util import img_as_float, regular_seeds
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from batchseg.errors import ImageError, UsageError
from batchseg.io.normalise import to_grey, to_rgb
from batchseg.methods import all_methods, get_method

H, W = 64, 96

GLOBAL = ["skimage.otsu", "skimage.li", "skimage.yen", "skimage.triangle"]
IDS = [
    *GLOBAL,
    "skimage.multiotsu",
    "skimage.local",
    "skimage.canny",
    "skimage.sobel_watershed",
    "skimage.watershed",
    "skimage.felzenszwalb",
    "skimage.slic",
    "kmeans",
]
THRESHOLD_FUNCS = {
    "otsu": filters.threshold_otsu,
    "li": filters.threshold_li,
    "yen": filters.threshold_yen,
    "triangle": filters.threshold_triangle,
}

# (method id, params): defaults plus a non-default setting for each method with params.
CASES = [(m, {}) for m in IDS] + [
    ("skimage.multiotsu", {"classes": 4}),
    ("skimage.local", {"block_size": 15, "offset": -0.02, "method": "mean"}),
    ("skimage.local", {"block_size": 9, "method": "median"}),
    ("skimage.canny", {"sigma": 2.0, "low_threshold": 0.05, "high_threshold": 0.15}),
    ("skimage.canny", {"min_area": 30}),
    ("skimage.sobel_watershed", {"markers": 40, "compactness": 0.01}),
    ("skimage.watershed", {"threshold": "li", "min_distance": 3, "footprint": 3}),
    ("skimage.felzenszwalb", {"scale": 300.0, "sigma": 0.5, "min_size": 50}),
    ("skimage.slic", {"n_segments": 30, "compactness": 0.1, "sigma": 0.0}),
    ("kmeans", {"k": 3, "space": "rgb", "seed": 7, "sample": 1500}),
    ("kmeans", {"k": 5, "sample": 0}),
]


# ----------------------------------------------------------------------------- images


def _blobs(seed: int) -> np.ndarray:
    return data.binary_blobs(W, blob_size_fraction=0.15, volume_fraction=0.35, rng=seed)[:H]


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    gradient = np.linspace(0.0, 1.0, W)[None, :] * np.ones((H, 1))
    blobs = _blobs(1)
    grey_u16 = blobs * 30000 + gradient * 20000 + rng.integers(0, 6000, size=(H, W))
    astronaut = data.astronaut()[::4, ::4][:H, 10 : 10 + W]
    noise_rgb = np.clip(
        np.stack([_blobs(2) * 150, _blobs(3) * 120, gradient * 200], axis=-1)
        + rng.normal(0, 12, size=(H, W, 3))
        + 40,
        0,
        255,
    )
    return {
        "grey_u8": data.coins()[100 : 100 + H, 60 : 60 + W].copy(),
        "grey_u16": grey_u16.astype(np.uint16),
        "rgb_u8": np.ascontiguousarray(astronaut),
        "rgb_blobs_u8": noise_rgb.astype(np.uint8),
        "rgb_u16": (astronaut.astype(np.uint16) * 257),
    }


GREY_KINDS = ["grey_u8", "grey_u16"]
COLOUR_KINDS = ["rgb_u8", "rgb_blobs_u8", "rgb_u16"]
KINDS = GREY_KINDS + COLOUR_KINDS


# ----------------------------------------------------------------------------- references
# Written straight from the libraries, independently of batchseg.io.normalise.


def ref_float(image: np.ndarray) -> np.ndarray:
    return img_as_float(image)


def ref_grey(image: np.ndarray) -> np.ndarray:
    f = img_as_float(image)
    return color.rgb2gray(f) if image.ndim == 3 else f


def reference(method_id: str, image: np.ndarray, params: dict) -> np.ndarray:
    method = get_method(method_id)
    p = method.resolve_params(params)
    grey = ref_grey(image)
    colour = image.ndim == 3
    if method_id in GLOBAL:
        return grey > THRESHOLD_FUNCS[method_id.split(".")[1]](grey)
    if method_id == "skimage.multiotsu":
        return np.digitize(grey, filters.threshold_multiotsu(grey, classes=p["classes"]))
    if method_id == "skimage.local":
        t = filters.threshold_local(grey, p["block_size"], method=p["method"], offset=p["offset"])
        return grey > t
    if method_id == "skimage.canny":
        lo = None if p["low_threshold"] < 0 else p["low_threshold"]
        hi = None if p["high_threshold"] < 0 else p["high_threshold"]
        edges = feature.canny(grey, sigma=p["sigma"], low_threshold=lo, high_threshold=hi)
        labels = measure.label(ndi.binary_fill_holes(edges), connectivity=2)
        if p["min_area"] > 0:
            areas = np.bincount(labels.ravel())
            keep = areas >= p["min_area"]
            keep[0] = False
            labels = segmentation.relabel_sequential(np.where(keep[labels], labels, 0))[0]
        return labels
    if method_id == "skimage.sobel_watershed":
        return segmentation.watershed(
            filters.sobel(grey), markers=p["markers"], compactness=p["compactness"]
        )
    if method_id == "skimage.watershed":
        mask = grey > THRESHOLD_FUNCS[p["threshold"]](grey)
        distance = ndi.distance_transform_edt(mask)
        fp = np.ones((p["footprint"],) * 2) if p["footprint"] else None
        peaks = feature.peak_local_max(
            distance,
            min_distance=p["min_distance"],
            footprint=fp,
            labels=measure.label(mask),
            exclude_border=False,
        )
        markers = np.zeros(mask.shape, int)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        return segmentation.watershed(-distance, markers, mask=mask)
    if method_id == "skimage.felzenszwalb":
        return 1 + segmentation.felzenszwalb(
            ref_float(image) if colour else grey,
            scale=p["scale"],
            sigma=p["sigma"],
            min_size=p["min_size"],
            channel_axis=-1 if colour else None,
        )
    if method_id == "skimage.slic":
        return segmentation.slic(
            ref_float(image) if colour else grey,
            n_segments=p["n_segments"],
            compactness=p["compactness"],
            sigma=p["sigma"],
            start_label=1,
            channel_axis=-1 if colour else None,
        )
    if method_id == "kmeans":
        if colour:
            f = ref_float(image)
            x = (color.rgb2lab(f) if p["space"] == "lab" else f).reshape(-1, 3)
        else:
            x = grey.reshape(-1, 1)
        fit = x
        if 0 < p["sample"] < len(x):
            idx = np.random.default_rng(p["seed"]).choice(len(x), p["sample"], replace=False)
            fit = x[np.sort(idx)]
        with threadpool_limits(limits=1, user_api="openmp"):
            km = KMeans(n_clusters=p["k"], n_init=3, random_state=p["seed"]).fit(fit)
            pred = km.predict(x)
        c = km.cluster_centers_
        if not colour or p["space"] == "lab":
            bright = c[:, 0]
        else:
            bright = c @ [0.2125, 0.7154, 0.0721]
        order = np.lexsort((*c.T[::-1], bright))
        rank = np.argsort(order)
        return rank[pred].reshape(grey.shape)
    raise AssertionError(method_id)


def run(method_id: str, image: np.ndarray, params: dict | None = None) -> np.ndarray:
    method = get_method(method_id)
    return method.segment(image, method.resolve_params(params))


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("method_id", "params"), CASES, ids=lambda v: str(v))
def test_matches_reference(images, method_id, params, kind):
    image = images[kind]
    out = run(method_id, image, params)
    assert out.shape == image.shape[:2]
    assert np.issubdtype(out.dtype, np.unsignedinteger)
    expected = reference(method_id, image, params)
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method_id", IDS)
def test_deterministic_and_bounded(images, method_id, kind):
    image = images[kind]
    method = get_method(method_id)
    params = method.resolve_params()
    if method_id == "kmeans":
        params = method.resolve_params({"sample": 2000})  # exercise the sampled fit
    a = method.segment(image, params)
    b = method.segment(image.copy(), params)
    assert a.dtype == b.dtype
    assert np.array_equal(a, b)
    dtype = method.label_dtype(params, *image.shape[:2])
    assert int(a.max()) <= np.iinfo(dtype).max
    if method.kind == "classes":
        names = method.classes(params)
        assert int(a.max()) < len(names)
    if method.max_label is not None:
        assert int(a.max()) <= method.max_label(params, *image.shape[:2])
    assert len(np.unique(a)) > 1


@pytest.mark.parametrize("method_id", IDS)
def test_alpha_is_ignored(images, method_id):
    rgb = images["rgb_blobs_u8"]
    alpha = np.random.default_rng(5).integers(0, 256, size=(H, W, 1), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=-1)
    assert np.array_equal(run(method_id, rgba), run(method_id, rgb))
    grey = images["grey_u16"]
    grey_alpha = np.stack([grey, np.full_like(grey, 65535)], axis=-1)
    assert np.array_equal(run(method_id, grey_alpha), run(method_id, grey))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # few colours
@pytest.mark.parametrize("method_id", IDS)
def test_other_grey_dtypes(images, method_id):
    u16 = images["grey_u16"]
    as_i32 = run(method_id, u16.astype(np.int32))
    assert np.array_equal(as_i32, run(method_id, u16))
    as_float = run(method_id, u16 / 65535.0)
    assert as_float.shape == (H, W)
    if method_id == "skimage.multiotsu":  # two grey levels cannot make three classes
        with pytest.raises(ImageError):
            run(method_id, _blobs(4))
    else:
        assert run(method_id, _blobs(4)).shape == (H, W)  # bool


@pytest.mark.parametrize("method_id", GLOBAL + ["skimage.local", "skimage.multiotsu"])
def test_constant_image_is_background(method_id):
    for value in (0, 17, 255):
        out = run(method_id, np.full((H, W), value, dtype=np.uint8))
        assert out.shape == (H, W)
        assert not out.any()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # few colours
@pytest.mark.parametrize("method_id", IDS)
def test_constant_image_does_not_crash(method_id):
    out = run(method_id, np.full((H, W, 3), 90, dtype=np.uint8))
    assert out.shape == (H, W)


def test_registry_lists_every_method():
    listed = {m.id for m in all_methods()}
    assert set(IDS) <= listed
    for method_id in IDS:
        method = get_method(method_id)
        assert method.id == method_id
        assert method.description and "\n" not in method.description
        assert method.family in {"threshold", "edge", "region", "clustering"}
        assert all(p.help for p in method.params)
        pickle.loads(pickle.dumps(method))  # shipped to worker processes
    with pytest.raises(UsageError):
        get_method("skimage.nope")


def test_kinds_and_class_names():
    for method_id in GLOBAL + ["skimage.local"]:
        m = get_method(method_id)
        assert m.kind == "classes"
        assert m.classes(m.resolve_params()) == ["background", "foreground"]
    m = get_method("skimage.multiotsu")
    assert m.classes(m.resolve_params({"classes": 4})) == [f"level_{i}" for i in range(4)]
    m = get_method("kmeans")
    assert m.classes(m.resolve_params({"k": 3})) == ["cluster_0", "cluster_1", "cluster_2"]
    for method_id in [
        "skimage.canny",
        "skimage.sobel_watershed",
        "skimage.watershed",
        "skimage.felzenszwalb",
        "skimage.slic",
    ]:
        assert get_method(method_id).kind == "regions"


BAD_VALUE = {int: "seven", float: "x1.5", str: "no-such-choice"}


@pytest.mark.parametrize("method_id", IDS)
def test_resolve_params_rejects_bad_input(method_id):
    method = get_method(method_id)
    with pytest.raises(UsageError):
        method.resolve_params({"no_such_param": 1})
    for p in method.params:
        with pytest.raises(UsageError):
            method.resolve_params({p.name: BAD_VALUE[p.type]})
        if p.minimum is not None:
            with pytest.raises(UsageError):
                method.resolve_params({p.name: p.minimum - 1})
    if method.params:  # strings from the CLI are converted
        p = method.params[0]
        assert method.resolve_params({p.name: str(p.default)})[p.name] == p.default


@pytest.mark.parametrize(
    ("method_id", "params"),
    [
        ("skimage.local", {"block_size": 34}),
        ("skimage.canny", {"low_threshold": 0.3, "high_threshold": 0.1}),
        ("kmeans", {"k": 6, "sample": 3}),
        ("skimage.multiotsu", {"classes": 2.5}),
        ("skimage.watershed", {"threshold": "isodata"}),
    ],
)
def test_resolve_params_cross_checks(method_id, params):
    with pytest.raises(UsageError):
        get_method(method_id).resolve_params(params)


def test_kmeans_classes_ordered_by_brightness(images):
    # lightness as each space sees it: grey level, L* (lab), or rgb2gray luma (rgb)
    for kind, space in [
        ("grey_u8", "lab"),
        ("rgb_u8", "lab"),
        ("rgb_blobs_u8", "lab"),
        ("rgb_u8", "rgb"),
        ("rgb_blobs_u8", "rgb"),
    ]:
        image = images[kind]
        labels = run("kmeans", image, {"k": 4, "space": space, "sample": 0})
        if image.ndim == 2 or space == "rgb":
            light = ref_grey(image)
        else:
            light = color.rgb2lab(img_as_float(image))[..., 0]
        means = [light[labels == c].mean() for c in range(4)]
        assert means == sorted(means), (kind, space)


def test_kmeans_seed_changes_sample_only_deterministically(images):
    image = images["rgb_u8"]
    a = run("kmeans", image, {"seed": 1, "sample": 500})
    b = run("kmeans", image, {"seed": 1, "sample": 500})
    assert np.array_equal(a, b)


def test_watershed_splits_touching_discs_and_keeps_border_objects():
    yy, xx = np.mgrid[:H, :W]
    discs = ((yy - 32) ** 2 + (xx - 30) ** 2 < 15**2) | ((yy - 32) ** 2 + (xx - 55) ** 2 < 15**2)
    discs |= (yy - 5) ** 2 + (xx - 90) ** 2 < 8**2  # touches the image border
    image = (discs * 200 + 20).astype(np.uint8)
    labels = run("skimage.watershed", image)
    assert measure.label(discs).max() == 2
    assert labels.max() == 3
    assert np.array_equal(labels > 0, discs)


def test_canny_min_area_drops_small_regions(images):
    image = images["grey_u8"]
    everything = run("skimage.canny", image)
    big = run("skimage.canny", image, {"min_area": 30})
    assert big.max() < everything.max()
    assert np.bincount(big.ravel())[1:].min() >= 30
    assert set(np.unique(big)) == set(range(big.max() + 1))


def test_sobel_watershed_bound_counts_the_seed_grid():
    method = get_method("skimage.sobel_watershed")
    for h, w, n in [(5, 51, 250), (64, 96, 250), (1, 4, 3), (7, 7, 1), (3, 3, 100)]:
        params = method.resolve_params({"markers": n})
        assert method.max_label(params, h, w) == regular_seeds((h, w), n).max()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 51), dtype=np.uint8)
    params = method.resolve_params()
    out = method.segment(image, params)
    assert out.max() == 255 == method.max_label(params, 5, 51)


def test_felzenszwalb_bound_holds(images):
    method = get_method("skimage.felzenszwalb")
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    for min_size in (1, 5, 40):
        params = method.resolve_params({"scale": 1.0, "sigma": 0.0, "min_size": min_size})
        out = method.segment(noise, params)
        assert out.min() == 1
        assert out.max() <= method.max_label(params, H, W)
        sizes = np.bincount(out.ravel())[1:]
        assert sizes.min() >= min_size


def test_multiotsu_too_few_levels_is_an_image_error():
    image = np.zeros((H, W), np.uint8)
    image[:, W // 2 :] = 200
    with pytest.raises(ImageError):
        run("skimage.multiotsu", image, {"classes": 4})


def test_convert():
    u8 = np.array([[0, 255]], np.uint8)
    assert np.array_equal(to_grey(u8), [[0.0, 1.0]])
    assert to_grey(u8).dtype == np.float64
    assert np.array_equal(to_grey(np.array([[0, 65535]], np.uint16)), [[0.0, 1.0]])
    i32 = np.array([[-5, 0, 65535, 70000]], np.int32)
    assert np.array_equal(to_grey(i32), [[0.0, 0.0, 1.0, 1.0]])
    assert np.array_equal(to_grey(np.array([[True, False]])), [[1.0, 0.0]])
    assert np.array_equal(to_grey(np.array([[-0.5, 0.25, 2.0]], np.float32)), [[0, 0.25, 1]])
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255
    assert np.allclose(to_grey(rgb), 0.2125)
    assert to_rgb(rgb).shape == (2, 3, 3)
    assert np.array_equal(to_rgb(u8), np.repeat(to_grey(u8)[..., None], 3, axis=2))
    rgba = np.concatenate([rgb, np.zeros((2, 3, 1), np.uint8)], axis=-1)
    assert np.array_equal(to_rgb(rgba), to_rgb(rgb))
    for bad in (np.zeros((2, 3, 5), np.uint8), np.zeros((2, 3, 3, 1), np.uint8)):
        with pytest.raises(ImageError):
            to_grey(bad)
    with pytest.raises(ImageError):
        to_grey(np.zeros((2, 2), np.complex64))
