"""Python API for stores not made by segmenting: :func:`import_labels` builds one from label
images, :func:`delete_evaluation` removes a stored evaluation."""

from __future__ import annotations

import logging
import os
from typing import Any

from batchseg.api_jobs import PathLike, run
from batchseg.errors import UsageError
from batchseg.results import RunResult

log = logging.getLogger(__name__)

__all__ = ["delete_evaluation", "import_labels"]


def import_labels(
    labels: PathLike,
    *,
    images: PathLike,
    output: PathLike,
    kind: str,
    classes: PathLike | None = None,
    pattern: str | None = None,
    **options: Any,
) -> RunResult:
    """Build a store of ``kind`` from label images another tool wrote (or annotations).

    The Python form of ``batchseg import``: a run of the method ``import.<kind>`` whose
    "segmentation" of each image of ``images`` is its partner file in ``labels`` (same
    relative path, any image suffix; or ``pattern``, e.g. ``"{stem}_mask.png"``), with
    statistics and object tables as a segmentation store of that kind. A missing, unreadable
    or differently sized partner fails that image alone. ``kind``: ``regions``, ``classes``
    (``classes``: a CSV ``value,class`` of grey values or colours) or ``instances``.
    ``options`` are :func:`run`'s (``workers``, ``overwrite``, ``shard_size``, ...).

    Examples
    --------
    The 0/1 label images of ``truth/`` (``truth/a.png`` for ``photos/a.png``) as a class-map
    store, and :func:`run`'s store scored against it:

    >>> import batchseg
    >>> from pathlib import Path
    >>> _ = Path("classes.csv").write_text("value,class\\n0,background\\n1,foreground\\n")
    >>> made = batchseg.import_labels(
    ...     "truth", images="photos", output="truth.zarr", kind="classes",
    ...     classes="classes.csv", workers=1,
    ... )
    >>> (made.done, made.failed, batchseg.open("truth.zarr").attrs["method"]["id"])
    (4, 0, 'import.classes')
    >>> batchseg.evaluate("photos.zarr", truth_store="truth.zarr", name="pair").images_scored
    4
    """
    from batchseg.job.labels_import import import_params

    bad = sorted(set(options) & {"method", "params", "pre", "input", "tile_threshold"})
    if bad:
        raise UsageError(f"import_labels() takes no {bad[0]!r}")
    method, params = import_params(
        os.fspath(labels), kind, None if classes is None else os.fspath(classes), pattern
    )
    # never tiled: a label file is read whole, as the image is
    return run(images, method=method, output=output, params=params, tile_threshold=0, **options)


def delete_evaluation(store: PathLike, name: str) -> None:
    """Remove the stored evaluation ``name`` of ``store`` (``batchseg evaluate STORE --delete
    NAME``): its per-image columns and its dataset result, under the store's lock; labels,
    statistics and other evaluations are untouched.

    Raises
    ------
    UsageError
        The store has no evaluation ``name`` (the message lists those it has).
    StoreError
        ``store`` is not a batchseg store, or another launcher holds its lock.
    """
    from batchseg.store.evaluations import delete_evaluation as delete

    path = os.fspath(store)
    delete(path, name)
    log.info("%s: deleted evaluation %r", path, name)
