"""Python API that runs jobs: :func:`run`, :func:`evaluate`, :func:`panoptic` (label maps
imported and evaluations deleted: :mod:`batchseg.api_stores`).

Each takes the options of its CLI command as typed keyword arguments (named like the flags
and the job-spec keys), raises the exceptions of :mod:`batchseg.errors` and returns a frozen
result (:mod:`batchseg.results`). The CLI commands ``run``, ``evaluate`` and ``panoptic`` call
these functions and add only argument parsing, progress display and exit codes. Nothing is
printed; progress goes to ``on_progress(done, failed, total)`` and to :mod:`logging`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from batchseg.core.limits import DEFAULT_MAX_PIXELS
from batchseg.errors import UsageError
from batchseg.job.spec import resolve_spec
from batchseg.results import MAX_FAILURES, EvaluationResult, ImageFailure, RunResult

if TYPE_CHECKING:
    from batchseg.cluster.settings import ClusterSettings
    from batchseg.job.run import JobResult

__all__ = ["ProgressCallback", "evaluate", "panoptic", "run"]

log = logging.getLogger(__name__)

#: ``on_progress(done, failed, total)``: called after each finished task with the images of
#: this call done and failed so far, of ``total`` to do.
ProgressCallback = Callable[[int, int, int], None]
PathLike = str | os.PathLike[str]


def run(
    input: PathLike,
    *,
    method: str | None = None,
    output: PathLike | None = None,
    params: Mapping[str, Any] | None = None,
    pre: Sequence[str] | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    scheduler: str | None = None,
    cluster: str | Mapping[str, Any] | None = None,
    gpus: int | None = None,
    shard_size: int | None = None,
    overwrite: bool | None = None,
    append: bool | None = None,
    retry_failed: bool | None = None,
    max_pixels: int | None = None,
    follow_links: bool | None = None,
    objects: bool | None = None,
    colors: PathLike | None = None,
    io_threads: int | None = None,
    tile_threshold: int | None = None,
    tile_size: int | None = None,
    planes: str | None = None,
    channels: str | int | Sequence[int] | None = None,
    project: str | None = None,
    axes: str | None = None,
    measure_channels: str | None = None,
    tls_ca_file: PathLike | None = None,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Segment a collection into a Zarr store; an existing store of the same job is resumed.

    The Python form of ``batchseg run``: every option is the flag (or job-spec key) of the
    same name, None meaning not given (the job spec's value, else the default).

    Parameters
    ----------
    input : str or path
        Image folder, glob, manifest (``.txt``/``.csv``), fsspec URL, or a job spec
        (``.toml``) whose keys the other arguments override.
    method : str
        Method id (``batchseg methods``), e.g. ``"skimage.otsu"``.
    output : str or path
        The Zarr store to write (local path or fsspec URL).
    params : mapping, optional
        Method parameters, e.g. ``{"n_segments": 300}`` (semantic methods: ``weights``,
        ``model``, ``classes``, ``batch_size``, ``precision``, ``device``, ``resize``).
    pre : sequence of str, optional
        Preprocessing filters in order, e.g. ``["gaussian:sigma=2", "clahe"]``.
    workers, threads_per_worker, gpus : int, optional
        Sizes of the embedded local cluster (default: one worker per core, one thread).
    scheduler : str, optional
        Attach to an existing Dask scheduler (``tcp://host:8786``).
    cluster : str or mapping, optional
        Cluster profile (``local``, ``address``, ``slurm``, ``pbs``, ``kubernetes``) or a whole
        ``[cluster]`` table as a mapping.
    shard_size : int, optional
        Images per task.
    overwrite, append, retry_failed, follow_links, objects : bool, optional
        As ``--overwrite``, ``--append``, ``--retry-failed``, ``--follow-links``, ``--objects``.
    max_pixels, io_threads, tile_threshold, tile_size : int, optional
        Decompression-bomb guard, decoding threads per task, tiling of huge images.
    colors : str or path, optional
        CSV of class colours stored with a new store.
    planes, project, axes, measure_channels : str, optional
        Stacks: ``z``, ``t`` or ``zt`` (every plane an image), ``max``/``mean`` over z, the axes
        of arrays without names (``tczyx``...), ``all``/``none`` per-channel measurements.
    channels : int, str or sequence of int, optional
        Channels the method sees: an index, three indices (as RGB) or ``"mean"``.
    tls_ca_file, tls_cert, tls_key : str or path, optional
        TLS files of the cluster (all three together).
    on_progress : callable, optional
        ``on_progress(done, failed, total)`` after each finished task.

    Returns
    -------
    RunResult
        Counts over the whole store, images processed by this call, seconds, the failures.

    Raises
    ------
    UsageError
        An invalid option, method, parameter or job spec (nothing created, no cluster).
    InputError
        The input cannot be discovered.
    StoreError
        The store cannot be written, holds another job, or is locked by another launcher.

    Examples
    --------
    Segment the four images of ``photos/`` on an embedded one-worker cluster:

    >>> import batchseg
    >>> result = batchseg.run("photos", method="skimage.otsu", output="photos.zarr", workers=1)
    >>> (result.done, result.failed, result.pending, result.exit_code)
    (4, 0, 0, 0)
    >>> batchseg.open("photos.zarr").table()["status"].tolist()
    ['done', 'done', 'done', 'done']

    The same call again finds the store finished, starts no cluster and records no run:

    >>> batchseg.run("photos", method="skimage.otsu", output="photos.zarr").nothing_to_do
    True

    Another method on the same store is refused (``overwrite=True`` replaces it):

    >>> batchseg.run("photos", method="skimage.li", output="photos.zarr")
    Traceback (most recent call last):
    ...
    batchseg.errors.StoreError: photos.zarr holds another job ...
    """
    from batchseg.job.run import run_job

    started = time.perf_counter()
    overrides: dict[str, Any] = {
        "method": method,
        "output": _text(output),
        "params": dict(params) if params is not None else None,
        "pre": [pre] if isinstance(pre, str) else (list(pre) if pre else None),
        "workers": workers,
        "threads_per_worker": threads_per_worker,
        "scheduler": scheduler,
        "cluster": cluster,
        "gpus": gpus,
        "shard_size": shard_size,
        "overwrite": overwrite,
        "append": append,
        "retry_failed": retry_failed,
        "max_pixels": max_pixels,
        "follow_links": follow_links,
        "objects": objects,
        "colors": _text(colors),
        "io_threads": io_threads,
        "tile_threshold": tile_threshold,
        "tile_size": tile_size,
        "planes": planes,
        "channels": _channels_text(channels),
        "project": project,
        "axes": axes,
        "measure_channels": measure_channels,
        "tls_ca_file": _text(tls_ca_file),
        "tls_cert": _text(tls_cert),
        "tls_key": _text(tls_key),
    }
    spec = resolve_spec(_text(input) or "", overrides)
    job = run_job(spec, on_progress=on_progress)
    return _run_result(job, time.perf_counter() - started)


def evaluate(
    store: PathLike,
    *,
    truth: PathLike | None = None,
    truth_store: PathLike | None = None,
    name: str = "eval",
    truth_pattern: str | None = None,
    truth_classes: PathLike | None = None,
    ignore: Sequence[int] = (),
    boundary_tolerance: float | None = None,
    components: str | None = None,
    truth_components: int | None = None,
    void: Sequence[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    gpus: int | None = None,
    scheduler: str | None = None,
    cluster: str | Mapping[str, Any] | None = None,
    cluster_spec: PathLike | None = None,
    tls_ca_file: PathLike | None = None,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    on_progress: ProgressCallback | None = None,
) -> EvaluationResult:
    """Score a store's done images against ground truth and store the scores.

    The Python form of ``batchseg evaluate``. Per-image scores become table columns
    ``<name>_<metric>`` and the dataset result is stored under ``name`` (evaluating again
    with a name replaces it); labels, statistics and status are never written.

    Parameters
    ----------
    store : str or path
        The store to score.
    truth : str or path
        Folder of truth label images (matched by relative path, any image suffix) or a CSV
        ``image_id,truth_path``; instance and panoptic stores: a COCO JSON file.
    truth_store : str or path, optional
        Instead of ``truth``: another store (another method's, or annotations imported with
        :func:`import_labels`) whose label maps are the truth, matched by image id; scored
        exactly as a truth folder of the same label maps.
    name : str
        The evaluation's name (``[a-z][a-z0-9_]*``).
    truth_pattern : str, optional
        Truth file from an image's stem, e.g. ``"{stem}_L.png"``; ``*`` scores every
        annotator and averages.
    truth_classes : str or path, optional
        CSV ``value,class`` mapping truth grey values or colours to the store's classes or
        ``ignore`` (default: values are class indices).
    ignore : sequence of int
        Truth values left out of scoring.
    boundary_tolerance : float, optional
        Boundary match distance in pixels (default 0.0075 x the image diagonal).
    components : str, optional
        Class maps: also score this class's connected components as regions.
    truth_components : int, optional
        Region stores: score against the connected components of this truth value.
    void : sequence of str, optional
        Class maps: void classes, left out of every mean (default: classes named void or
        unlabelled; ``["none"]``: none).
    max_pixels : int
        Truth files with more pixels are refused from their header.
    workers, threads_per_worker, gpus, scheduler, cluster, tls_ca_file, tls_cert, tls_key
        Where the scoring tasks run, as for :func:`run`.
    cluster_spec : str or path, optional
        A TOML file (a job spec) whose cluster keys and ``[cluster]`` table say where the
        tasks run; the keywords above override it.
    on_progress : callable, optional
        ``on_progress(scored, failed, total)`` after each finished task.

    Returns
    -------
    EvaluationResult
        The dataset metrics as stored, the images without truth and those not scored.

    Raises
    ------
    UsageError
        An invalid option, no truth for any image, or a store kind that cannot be scored.
    StoreError
        The store cannot be read or written, or another launcher holds its lock.

    Examples
    --------
    Score ``photos.zarr`` (:func:`run`'s example) against the label images of ``truth/``
    (``truth/a.png`` for ``photos/a.png``; 0 background, 1 foreground):

    >>> import batchseg
    >>> result = batchseg.evaluate("photos.zarr", truth="truth", workers=1)
    >>> (result.images_scored, result.missing, result.exit_code)
    (4, (), 0)
    >>> 0.0 <= result.metrics["miou"] <= 1.0
    True
    >>> bool(batchseg.open("photos.zarr").table()["eval_miou"].notna().all())
    True
    """
    from batchseg.evaluate.job import EvalOptions, evaluate_store

    started = time.perf_counter()
    if (truth is None) == (truth_store is None):
        raise UsageError("give --truth or --truth-store (one of them)")
    if boundary_tolerance is not None and not boundary_tolerance >= 0:
        raise UsageError(f"--boundary-tolerance must be >= 0, got {boundary_tolerance}")
    if isinstance(ignore, str | bytes) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in ignore
    ):
        raise UsageError(f"--ignore takes integer truth values, got {ignore!r}")
    if not 1 <= max_pixels <= 1 << 40:
        raise UsageError(f"--max-pixels must be in [1, 2^40], got {max_pixels}")
    settings = _cluster_settings(cluster_spec, locals())
    path = _text(store) or ""
    options = EvalOptions(
        truth=_text(truth) or "",
        name=name,
        pattern=truth_pattern,
        truth_classes=_text(truth_classes),
        ignore=tuple(ignore),
        tolerance=boundary_tolerance,
        profile=settings.profile,
        components=components,
        max_pixels=max_pixels,
        void=tuple(void) if void else None,
        truth_components=truth_components,
        tls_ca_file=settings.tls_ca_file,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        truth_store=_text(truth_store),
    )
    out = evaluate_store(path, options, on_progress)
    return EvaluationResult(
        store=path,
        name=out.name,
        metrics=dict(out.result),
        missing=tuple(out.missing),
        failures=tuple(ImageFailure(i, e) for i, e in out.failed.items()),
        seconds=time.perf_counter() - started,
    )


def panoptic(
    *,
    semantic: PathLike,
    instances: PathLike,
    output: PathLike,
    things: str | Sequence[str] | None = None,
    overlap: float = 0.5,
    min_stuff_area: int = 4096,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    gpus: int | None = None,
    scheduler: str | None = None,
    cluster: str | Mapping[str, Any] | None = None,
    cluster_spec: PathLike | None = None,
    tls_ca_file: PathLike | None = None,
    tls_cert: PathLike | None = None,
    tls_key: PathLike | None = None,
    overwrite: bool = False,
    void: Sequence[str] | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Merge a semantic store and an instance store of the same images into a panoptic store.

    The Python form of ``batchseg panoptic``: labels ``class_index * 1000 + instance``,
    per-class statistics and one object row per segment. Resumes like :func:`run`.

    Parameters
    ----------
    semantic : str or path
        Store of a semantic method (class maps).
    instances : str or path
        Store of an instance method, same images.
    output : str or path
        The panoptic store to write.
    things : str or sequence of str, optional
        Thing classes (a comma-separated string or a sequence); default: the instance
        store's classes but background. Other semantic classes are stuff.
    overlap : float
        Drop an instance when more than this fraction of it is taken.
    min_stuff_area : int
        Smallest stuff region kept, in pixels (smaller ones are void).
    workers, threads_per_worker, scheduler, cluster
        Where the merge tasks run, as for :func:`run`.
    overwrite : bool
        Replace an existing output store.
    on_progress : callable, optional
        ``on_progress(done, failed, total)`` after each finished task.

    Returns
    -------
    RunResult
        Counts over the output store; an image that failed in a source fails here.

    Raises
    ------
    UsageError
        Invalid options, or sources of the wrong kind or of other images.
    StoreError
        A source cannot be read, the output cannot be written or holds another merge.

    Examples
    --------
    ``sem.zarr`` and ``inst.zarr`` hold a semantic and an instance method's results of the
    same four images; the instance method failed on ``c.png``:

    >>> import batchseg
    >>> result = batchseg.panoptic(
    ...     semantic="sem.zarr", instances="inst.zarr", output="pan.zarr", workers=1
    ... )
    >>> (result.done, result.failed, [f.image_id for f in result.failures])
    (3, 1, ['c.png'])
    >>> batchseg.open("pan.zarr").kind
    'panoptic'
    """
    from batchseg.job.panoptic import PanopticSpec, run_panoptic

    started = time.perf_counter()
    settings = _cluster_settings(cluster_spec, locals())
    spec = PanopticSpec(
        semantic=_text(semantic) or "",
        instances=_text(instances) or "",
        output=_text(output) or "",
        things=_things(things),
        overlap=overlap,
        min_stuff_area=min_stuff_area,
        void=tuple(void) if void else None,
        profile=settings.profile,
        overwrite=overwrite,
        tls_ca_file=settings.tls_ca_file,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
    )
    job = run_panoptic(spec, on_progress=on_progress)
    return _run_result(job, time.perf_counter() - started)


def _cluster_settings(
    cluster_spec: PathLike | None, arguments: Mapping[str, Any]
) -> ClusterSettings:
    """Where the workers come from: the cluster keywords among a call's ``arguments`` (None:
    not given) over ``cluster_spec``."""
    from batchseg.cluster.settings import CLUSTER_KEYS, TLS_KEYS, load_cluster_settings

    options = {key: arguments[key] for key in CLUSTER_KEYS}
    options.update({key: _text(options[key]) for key in TLS_KEYS})
    return load_cluster_settings(_text(cluster_spec), options)


def _channels_text(channels: str | int | Sequence[int] | None) -> str | None:
    """``channels`` as the job spec's text (``"1"``, ``"2,1,0"``, ``"mean"``)."""
    if channels is None or isinstance(channels, str):
        return channels
    if isinstance(channels, int):
        return str(channels)
    return ",".join(str(int(c)) for c in channels)


def _text(value: PathLike | None) -> str | None:
    """A path argument as the string the job layer takes (None stays None)."""
    return None if value is None else os.fspath(value)


def _things(things: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Thing class names from a comma-separated string or a sequence; None: the default."""
    if things is None:
        return None
    items = things.split(",") if isinstance(things, str) else list(things)
    if not all(isinstance(n, str) for n in items):
        raise UsageError(f"--things takes class names, got {things!r}")
    names = tuple(n.strip() for n in items if n.strip())
    if not names:
        raise UsageError("--things needs at least one class name")
    return names


def _run_result(job: JobResult, seconds: float) -> RunResult:
    """The public result of a job layer's ``JobResult``, with the store's failures."""
    return RunResult(
        store=job.store,
        images=job.images,
        done=job.done,
        failed=job.failed,
        pending=job.pending,
        processed=job.processed,
        seconds=seconds,
        failures=_failures(job.store) if job.failed else (),
        nothing_to_do=job.nothing_to_do,
        added=job.added,
        gone=job.gone,
    )


def _failures(path: str) -> tuple[ImageFailure, ...]:
    """The store's failed images with their errors, in store order (the first MAX_FAILURES)."""
    from batchseg.store import FAILED, image_infos, open_group

    found: list[ImageFailure] = []
    for info in image_infos(open_group(path, mode="r")):
        if info.status == FAILED:
            found.append(ImageFailure(info.image_id, info.error))
            if len(found) == MAX_FAILURES:
                log.info("%s: more than %d failed images; status() lists all", path, MAX_FAILURES)
                break
    return tuple(found)
