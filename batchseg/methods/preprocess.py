"""A preprocessing chain run before any method: scikit-image filters, numpy in, numpy out.

A chain is written as filter specs, e.g. ``["gaussian:sigma=2", "clahe"]`` (``--pre`` on the
command line, ``pre = [...]`` in a job spec). Each spec is ``NAME`` or
``NAME:KEY=VALUE,KEY=VALUE``; :func:`parse_chain` checks names and values and writes each spec
in one canonical form (every parameter, in order), which is what the store records and the
job fingerprint holds. :func:`apply_chain` runs it: the image loses any alpha channel, becomes
floats in [0, 1] by the normaliser's rule (:func:`batchseg.io.normalise.unit_float`), then each
filter is the plain scikit-image call on that array (colour images filtered per channel
where the filter has a channel axis).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from batchseg.errors import UsageError
from batchseg.io.normalise import split_alpha, unit_float
from batchseg.methods.params import Param

#: The most filters one chain may hold.
MAX_CHAIN = 16


@dataclass(frozen=True)
class Filter:
    """One preprocessing filter: its scikit-image call and its parameters."""

    name: str
    call: Callable[..., np.ndarray]  # (float image, colour: bool, **params) -> image
    params: tuple[Param, ...]
    help: str


def _axis(colour: bool) -> int | None:
    return -1 if colour else None


def gaussian(image: np.ndarray, colour: bool, sigma: float) -> np.ndarray:
    """``skimage.filters.gaussian`` (per channel for colour)."""
    from skimage import filters

    return filters.gaussian(image, sigma=sigma, channel_axis=_axis(colour))


def median(image: np.ndarray, colour: bool, radius: int) -> np.ndarray:
    """``skimage.filters.median`` with a disk of ``radius`` (per channel for colour)."""
    from skimage import filters, morphology

    footprint = morphology.disk(radius)
    if colour:
        footprint = footprint[..., None]
    return filters.median(image, footprint=footprint)


def rescale_intensity(image: np.ndarray, colour: bool, low: float, high: float) -> np.ndarray:
    """``skimage.exposure.rescale_intensity``; ``low``/``high`` percentiles set the input range."""
    from skimage import exposure

    if (low, high) == (0.0, 100.0):
        return exposure.rescale_intensity(image, in_range="image")
    lo, hi = np.percentile(image, (low, high))
    return exposure.rescale_intensity(image, in_range=(float(lo), float(hi)))


def equalize_adapthist(
    image: np.ndarray, colour: bool, clip_limit: float, kernel_size: int, nbins: int
) -> np.ndarray:
    """``skimage.exposure.equalize_adapthist`` (CLAHE); kernel_size 0 = scikit-image's default."""
    from skimage import exposure

    return exposure.equalize_adapthist(
        image, kernel_size=kernel_size or None, clip_limit=clip_limit, nbins=nbins
    )


def unsharp_mask(image: np.ndarray, colour: bool, radius: float, amount: float) -> np.ndarray:
    """``skimage.filters.unsharp_mask`` on each channel.

    Colour is filtered channel by channel here: scikit-image 0.26's own ``channel_axis`` path
    returned mostly the unfiltered input plus a few uninitialised values (differing run to run).
    """
    from skimage import filters

    if not colour:
        return filters.unsharp_mask(image, radius=radius, amount=amount)
    channels = [
        filters.unsharp_mask(image[..., c], radius=radius, amount=amount)
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1)


FILTERS: dict[str, Filter] = {
    f.name: f
    for f in (
        Filter(
            "gaussian",
            gaussian,
            (Param("sigma", float, 1.0, "standard deviation in pixels", minimum=0),),
            "Gaussian smoothing",
        ),
        Filter(
            "median",
            median,
            (Param("radius", int, 1, "radius of the disk footprint", minimum=1, maximum=50),),
            "median filter (removes speckle, keeps edges)",
        ),
        Filter(
            "rescale_intensity",
            rescale_intensity,
            (
                Param("low", float, 0.0, "percentile mapped to 0", minimum=0, maximum=100),
                Param("high", float, 100.0, "percentile mapped to 1", minimum=0, maximum=100),
            ),
            "contrast stretch between two percentiles",
        ),
        Filter(
            "equalize_adapthist",
            equalize_adapthist,
            (
                Param("clip_limit", float, 0.01, "contrast limit (0-1)", minimum=0, maximum=1),
                Param(
                    "kernel_size", int, 0, "tile side in pixels; 0 = 1/8 of the image", minimum=0
                ),
                Param("nbins", int, 256, "histogram bins", minimum=2, maximum=65536),
            ),
            "contrast-limited adaptive histogram equalisation (CLAHE)",
        ),
        Filter(
            "unsharp_mask",
            unsharp_mask,
            (
                Param("radius", float, 1.0, "Gaussian radius of the blur subtracted", minimum=0),
                Param("amount", float, 1.0, "strength of the sharpening", minimum=0),
            ),
            "unsharp-mask sharpening",
        ),
    )
}
ALIASES: dict[str, str] = {"clahe": "equalize_adapthist"}


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _format(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@lru_cache(maxsize=256)
def parse_filter(text: str) -> tuple[Filter, tuple[tuple[str, Any], ...]]:
    """(filter, ((param, value), ...) in the filter's order) of one spec ``NAME[:K=V,...]``."""
    name, _, rest = text.strip().partition(":")
    name = name.strip().lower()
    name = ALIASES.get(name, name)
    if name not in FILTERS:
        known = ", ".join([*FILTERS, *ALIASES])
        raise UsageError(
            f"unknown preprocessing filter {name!r}{_suggest(name, [*FILTERS, *ALIASES])}; "
            f"known: {known}"
        )
    filt = FILTERS[name]
    known_params = {p.name: p for p in filt.params}
    given: dict[str, Any] = {}
    for item in (part.strip() for part in rest.split(",")) if rest.strip() else ():
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"preprocessing {text!r}: write {name}:KEY=VALUE,KEY=VALUE")
        if key not in known_params:
            names = ", ".join(known_params)
            raise UsageError(
                f"filter {name} has no parameter {key!r}{_suggest(key, list(known_params))} "
                f"(parameters: {names})"
            )
        given[key] = known_params[key].parse(value.strip())
    values = tuple((p.name, given.get(p.name, p.default)) for p in filt.params)
    if name == "rescale_intensity" and values[0][1] >= values[1][1]:
        raise UsageError(f"preprocessing {text!r}: low must be below high")
    return filt, values


def canonical(text: str) -> str:
    """One spec written canonically: ``name:every=value`` (defaults included)."""
    filt, values = parse_filter(text)
    if not values:
        return filt.name
    return filt.name + ":" + ",".join(f"{k}={_format(v)}" for k, v in values)


def parse_chain(value: Any) -> list[str]:
    """The canonical chain of ``value``: a list of specs, or one string (specs split by ';')."""
    if isinstance(value, str):
        items: list[Any] = [part for part in value.split(";") if part.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise UsageError(f"'pre' must be a list of filter specs, got {value!r}")
    if len(items) > MAX_CHAIN:
        raise UsageError(f"'pre' holds {len(items)} filters; at most {MAX_CHAIN}")
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise UsageError(
                f"'pre' entries must be filter specs like 'gaussian:sigma=2'; got {item!r}"
            )
        out.append(canonical(item))
    return out


def apply_chain(image: np.ndarray, chain: Sequence[str]) -> np.ndarray:
    """``image`` (alpha dropped, floats in [0, 1]) through each filter of ``chain`` in turn."""
    pixels, colour = split_alpha(image)
    out = unit_float(pixels)
    for spec in chain:
        filt, values = parse_filter(spec)
        out = np.asarray(filt.call(out, colour, **dict(values)))
    return out
