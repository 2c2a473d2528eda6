"""Method description: identity, parameters, output kind and the per-image kernel."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import numpy as np

from batchseg.core.kinds import Kind
from batchseg.errors import UsageError
from batchseg.methods import preprocess
from batchseg.methods.origin import BUILTIN, Origin
from batchseg.methods.params import Param

__all__ = ["PRE", "KernelRunner", "Method", "Param", "Runner", "Segmentation", "TileSpec"]

#: The parameter every method accepts: the preprocessing chain (batchseg.methods.preprocess),
#: present in resolved parameters only when a chain is given.
PRE = "pre"

#: ``classes``: a class per pixel; ``regions``: region ids (0 none); ``instances``: instance
#: ids (0 none) with a class map of the same pixels and per-instance class, score and box.
#: What a method is, for listings and orchestration (a closed set, checked on construction).
Family = Literal[
    "classical",
    "threshold",
    "edge",
    "region",
    "clustering",
    "semantic",
    "instance",
    "function",
    "import",
]
FAMILIES: tuple[str, ...] = get_args(Family)
Kernel = Callable[..., np.ndarray]
Params = Mapping[str, Any]
Shape = tuple[int, int]


#: The columns of :attr:`Segmentation.instances` every instance method returns.
INSTANCE_FIELDS: tuple[str, ...] = (
    "class_index",
    "score",
    "box_min_row",
    "box_min_col",
    "box_max_row",
    "box_max_col",
)


@dataclass
class Segmentation:
    """What a method returns for one image: labels, and optionally per-pixel confidence."""

    labels: np.ndarray
    confidence: np.ndarray | None = None  # uint8 0-255, same H x W as labels
    #: instance methods: the class index of every pixel (0 = background), H x W
    classes: np.ndarray | None = None
    #: instance methods: per-instance columns, row ``i`` describing instance id ``i + 1``:
    #: ``class_index`` (int64), ``score`` (float64), the detector's box ``box_min_row``,
    #: ``box_min_col``, ``box_max_row``, ``box_max_col`` (float64 pixels) and optionally
    #: ``mask_area`` (int64: the whole thresholded mask, before overlaps were resolved)
    instances: dict[str, np.ndarray] | None = None


class Runner(Protocol):
    """Segments batches of images; built once per worker process for a (method, params).

    ``batch_size`` is how many images one call should get (1 for per-image kernels).
    """

    batch_size: int

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        """One result per image: a Segmentation, or the exception that image raised."""
        ...


class PreRunner:
    """A runner with the preprocessing chain applied to each image before ``inner``."""

    def __init__(self, inner: Runner, chain: Sequence[str]) -> None:
        self.inner = inner
        self.chain = list(chain)
        self.batch_size = inner.batch_size

    def __getattr__(self, name: str) -> Any:  # e.g. the semantic runner's model
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def segment_batch(
        self, images: Sequence[np.ndarray], **ids: Any
    ) -> list[Segmentation | Exception]:
        """``ids``: ``image_ids`` for a runner that ``reads_partners`` (passed on)."""
        ready: list[np.ndarray] = []
        out: list[Segmentation | Exception | None] = []
        for image in images:
            try:
                ready.append(preprocess.apply_chain(image, self.chain))
                out.append(None)
            except Exception as exc:  # noqa: BLE001 - recorded per image
                out.append(exc)
        if ids and any(r is not None for r in out):  # only the images that reached ``inner``
            ids = {k: [i for i, r in zip(v, out, strict=True) if r is None] for k, v in ids.items()}
        results = iter(self.inner.segment_batch(ready, **ids) if ready else [])
        return [r if r is not None else next(results) for r in out]


class KernelRunner:
    """Runner for plain per-image kernels: a loop, each image failing alone."""

    batch_size = 1

    def __init__(self, method: Method, params: Mapping[str, Any]) -> None:
        self.method = method
        self.params = dict(params)

    def segment_batch(self, images: Sequence[np.ndarray]) -> list[Segmentation | Exception]:
        out: list[Segmentation | Exception] = []
        for image in images:
            try:
                out.append(Segmentation(self.method.segment(image, self.params)))
            except Exception as exc:  # noqa: BLE001 - recorded per image
                out.append(exc)
        return out


@dataclass(frozen=True)
class TileSpec:
    """How a method segments a huge image tile by tile (see :mod:`batchseg.methods.tiled`).

    ``reduce`` is the whole-image (global) pass before any tile: ``histogram`` (a global
    threshold), ``sample`` (k-means centres) or ``none``. ``stitch`` says how tiles join:
    ``none`` (class maps), ``touch`` (connected components), ``overlap`` (superpixels,
    watersheds) or ``semantic`` (blended logits of sliding windows). ``halo`` is the context
    read around each tile, ``segment`` the method on one haloed window. ``check`` refuses
    parameters that have no tiled form; ``min_area`` is the size under which stitched
    regions are dropped (0: none); ``smooth`` the Gaussian sigma through which the reduction
    and ``segment`` see the grey image (0: none; windows then carry its radius as halo).
    """

    reduce: Literal["none", "histogram", "sample"]
    stitch: Literal["none", "touch", "overlap", "semantic"]
    halo: Callable[[Params, Shape, int], int]
    #: None for semantic models (sliding windows, :func:`batchseg.methods.tiled.window_lattice`)
    segment: Callable[[np.ndarray, Params, dict[str, Any], Shape], np.ndarray] | None
    threshold: Callable[[Params], str] | None = None
    check: Callable[[Params], None] | None = None
    min_area: Callable[[Params], int] | None = None
    smooth: Callable[[Params], float] | None = None


@dataclass(frozen=True)
class Method:
    """A segmentation method.

    ``kernel(image, **params)`` takes the decoded image (H x W grey or H x W x 3 RGB, any
    integer/float dtype) and returns integer labels of shape H x W. ``kind`` says whether
    labels are a class map (``classes(params)`` gives the class names) or region labels
    (0 = no region, 1..n regions).
    """

    id: str
    kind: Kind  # a kind name is accepted and parsed
    kernel: Kernel
    description: str
    params: tuple[Param, ...] = ()
    class_names: Callable[[Mapping[str, Any]], list[str]] | None = None
    max_label: Callable[[Mapping[str, Any], int, int], int] | None = None
    family: Family = "classical"
    make_runner: Callable[[Mapping[str, Any]], Runner] | None = None
    has_confidence: bool = False
    #: parameters that change how, not what, is computed (left out of the job fingerprint)
    runtime_params: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)
    #: cross-parameter check after type conversion (cheap; runs in every resolve_params)
    check: Callable[[dict[str, Any]], None] | None = None
    #: launcher-side check run once before any store or cluster exists (may load files,
    #: e.g. a checkpoint that must fit the network); raises UsageError
    prepare: Callable[[Mapping[str, Any], bool], None] | None = None
    #: the tiled form for images above --tile-threshold; None: whole images only
    tiled: TileSpec | None = None
    #: why there is no tiled form (shown in the error)
    untiled_reason: str = "it has no tiled form"
    #: the model runs on GPUs when workers have them (GPU resources, model warm-up)
    uses_gpu: bool = False
    #: region methods whose regions are objects (cells, blobs): a per-object table is written
    #: unless ``--no-objects``; superpixel methods measure objects only with ``--objects``
    objects_default: bool = False
    #: where the method comes from (batchseg, an installed plug-in, a user's function)
    origin: Origin = BUILTIN

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(
                f"method {self.id!r}: family {self.family!r} is not one of {', '.join(FAMILIES)}"
            )
        kind = Kind.parse(self.kind, what=f"output kind of method {self.id!r}")
        if not kind.method_output:
            raise ValueError(f"method {self.id!r}: a method cannot produce {kind} labels")
        object.__setattr__(self, "kind", kind)
        if self.objects_default and self.kind.class_map:
            raise ValueError(f"method {self.id!r}: only region methods measure objects")

    def objects(self, requested: bool | None) -> bool:
        """Whether a job measures objects: ``requested`` (``--objects``/``--no-objects``) or
        this method's default. Class maps have no objects: asking for them is a UsageError."""
        if requested and self.kind.class_map:
            raise UsageError(
                f"method {self.id} makes class maps; objects are measured on region labels "
                "(e.g. skimage.objects, skimage.watershed)"
            )
        return self.objects_default if requested is None else bool(requested)

    def warm_imports(self) -> None:
        """Import what segmenting needs (a worker preloads it while it starts): a kernel
        method segments a small synthetic image with its defaults (scikit-image imports its
        submodules lazily); model methods import nothing here (their runner loads torch)."""
        if self.make_runner is not None:
            return
        rng = np.random.default_rng(0)
        self.segment(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), self.resolve_params())

    def runner(self, params: Mapping[str, Any]) -> Runner:
        """A runner for ``params`` (semantic methods cache theirs per worker process)."""
        chain = params.get(PRE)
        if self.make_runner is None:
            return KernelRunner(self, params)
        if not chain:
            return self.make_runner(params)
        inner = self.make_runner({k: v for k, v in params.items() if k != PRE})
        return PreRunner(inner, chain)

    def resolve_params(self, raw: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``raw``, type-converted; unknown names are errors.

        ``pre`` (a preprocessing chain) is accepted by every method and kept, canonical, only
        when not empty; parameters marked ``omit_default`` are left out at their default.
        """
        raw = dict(raw or {})
        chain = preprocess.parse_chain(raw.pop(PRE)) if PRE in raw else []
        known = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise UsageError(
                f"method {self.id} has no parameter {unknown[0]!r} (parameters: {names})"
            )
        params: dict[str, Any] = {}
        for name, p in known.items():
            value = p.parse(raw[name]) if name in raw else p.default
            if not (p.omit_default and value == p.default):
                params[name] = value
        if self.check is not None:
            self.check(params)
        if chain:
            params[PRE] = chain
        return params

    def validate(self, params: Mapping[str, Any], *, local_workers: bool = True) -> None:
        """Check resolved ``params`` once in the launcher (e.g. load a checkpoint).

        Raises UsageError; run before any store or cluster exists, so a bad parameter is
        exit 2 with one line rather than every image failing inside the tasks.
        ``local_workers`` says the workers run on this machine (the embedded cluster), so
        facts of this machine (such as a CUDA device) are facts of the workers too.
        """
        if self.prepare is not None:
            self.prepare(params, local_workers)

    def classes(self, params: Mapping[str, Any]) -> list[str] | None:
        """Class names for class-map and instance methods, None for region methods."""
        if self.kind is Kind.REGIONS:
            return None
        if self.class_names is None:
            raise UsageError(f"method {self.id} declares no class names")
        return self.class_names(params)

    def label_dtype(self, params: Mapping[str, Any], height: int, width: int) -> np.dtype:
        """Smallest unsigned dtype that holds every label this method can produce."""
        if self.max_label is not None:
            top = self.max_label(params, height, width)
        elif self.kind.class_map:
            top = len(self.classes(params) or []) - 1
        else:
            top = height * width
        return smallest_uint(top)

    def segment(self, image: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        """Run the kernel on one image (after the preprocessing chain, if any)."""
        chain = params.get(PRE)
        if chain:
            image = preprocess.apply_chain(image, chain)
            params = {k: v for k, v in params.items() if k != PRE}
        return self.kernel(image, **params)


def one_image_kernel(runner_for: Callable[[dict[str, Any]], Any]) -> Callable[..., np.ndarray]:
    """The per-image kernel of a batched method: one image through ``runner_for(params)``'s
    ``segment_batch``; the image's failure is raised, its labels returned."""

    def kernel(image: np.ndarray, **params: Any) -> np.ndarray:
        result = runner_for(params).segment_batch([image])[0]
        if isinstance(result, Exception):
            raise result
        return result.labels

    return kernel


def smallest_uint(top: int) -> np.dtype:
    """Smallest unsigned integer dtype whose range includes ``top``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def _default_classes(method: Method) -> list[str] | None:
    """Class names under default parameters, when they need no model file."""
    if method.kind is Kind.REGIONS:
        return None
    try:
        return method.classes(method.resolve_params())
    except Exception:  # noqa: BLE001 - e.g. a model path is required to know them
        return None


def describe(methods: Sequence[Method], *, classes: bool = True) -> list[dict[str, Any]]:
    """Plain-data description of methods for listings (``classes=False``: class names None,
    so that listing semantic methods does not import torch)."""
    out = []
    for m in methods:
        out.append(
            {
                "id": m.id,
                "kind": m.kind.value,
                "family": m.family,
                "description": m.description,
                "package": m.origin.package,
                "params": [
                    {
                        "name": p.name,
                        "type": p.type.__name__,
                        "default": p.default,
                        "choices": list(p.choices) if p.choices else None,
                        "help": p.help,
                    }
                    for p in m.params
                ],
                "classes": _default_classes(m) if classes else None,
            }
        )
    return out
