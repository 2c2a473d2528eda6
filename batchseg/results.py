"""What the job functions of the Python API return: frozen, typed results.

:func:`batchseg.run` and :func:`batchseg.panoptic` return a :class:`RunResult`,
:func:`batchseg.evaluate` an :class:`EvaluationResult`. Both carry the exit code the CLI
ends with (0 everything done, 3 some images failed, are pending or were not scored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

__all__ = [
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EvaluationResult",
    "Failure",
    "ImageFailure",
    "ImageRecord",
    "MAX_FAILURES",
    "RunResult",
    "StatusReport",
    "Summary",
]

#: Exit code of a finished job whose every image is done (or scored).
EXIT_OK = 0
#: Exit code of a finished job with failed or pending (or unscored) images.
EXIT_INCOMPLETE = 3
#: The most failures a :class:`RunResult` lists (the store keeps every one).
MAX_FAILURES = 1000


@dataclass(frozen=True)
class ImageFailure:
    """One image that failed, with its one-line error."""

    image_id: str
    error: str


@dataclass(frozen=True)
class RunResult:
    """Outcome of a segmentation (or panoptic merge) over the whole store, not only this run.

    Attributes
    ----------
    store : str
        The store written.
    images, done, failed, pending : int
        Images in the store and how many of them are done, failed or still pending (damaged
        rows count as pending: the next run re-segments them).
    processed : int
        Images this run worked on (0 when there was nothing to do).
    seconds : float
        Wall time of this call.
    failures : tuple of ImageFailure
        The failed images with their errors, in store order (at most
        :data:`MAX_FAILURES`; ``batchseg.open(store).status()`` lists every one).
    nothing_to_do : bool
        The store was already finished: no cluster started, no run recorded.
    added, gone : int
        With ``append=True``: images appended, and stored images no longer in the input
        (kept in the store).
    """

    store: str
    images: int
    done: int
    failed: int
    pending: int
    processed: int
    seconds: float
    failures: tuple[ImageFailure, ...] = ()
    nothing_to_do: bool = False
    added: int = 0
    gone: int = 0

    @property
    def images_per_second(self) -> float:
        """Images processed per second of this call."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every image is done, 3 when some failed or are pending."""
        return EXIT_OK if self.failed == 0 and self.pending == 0 else EXIT_INCOMPLETE


@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of scoring a store against ground truth.

    Attributes
    ----------
    store : str
        The store scored (its evaluation ``name`` now holds these results).
    name : str
        The evaluation's name: per-image columns ``<name>_<metric>`` in the store's table.
    metrics : mapping
        The dataset result as stored (``miou``, ``pixel_accuracy``, ``ap``, ``pq``, ...,
        ``images_scored``, ``truth``; README, Evaluation).
    missing : tuple of str
        Done images without truth (not scored).
    failures : tuple of ImageFailure
        Images whose scoring failed, with the reason.
    seconds : float
        Wall time of this call.
    """

    store: str
    name: str
    metrics: Mapping[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    failures: tuple[ImageFailure, ...] = ()
    seconds: float = 0.0

    @property
    def images_scored(self) -> int:
        """Images scored (``metrics["images_scored"]``)."""
        return int(self.metrics.get("images_scored", 0))

    @property
    def exit_code(self) -> int:
        """0 when every done image was scored, 3 when some had no truth or failed."""
        return EXIT_INCOMPLETE if self.missing or self.failures else EXIT_OK


@dataclass(frozen=True)
class ImageRecord:
    """One image's catalogue entry, as :meth:`batchseg.StoreView.image` returns it.

    ``status`` is a name, as ``StoreView.table()`` and ``StoreView.status()`` show it:
    ``pending``, ``done``, ``failed`` or ``damaged`` (a stored code batchseg does not know).
    ``height``/``width`` are None when the image's header could not be read.
    """

    image_id: str
    status: str
    error: str
    row: int
    height: int | None
    width: int | None
    tiled: bool


class Failure(TypedDict):
    """One failed image of :meth:`StoreView.status`."""

    image_id: str
    error: str


class StatusReport(TypedDict):
    """What :meth:`StoreView.status` returns (``batchseg status --json`` prints it as is)."""

    store: str
    images: int
    done: int
    failed: int
    pending: int
    damaged: int
    failures: list[Failure]
    damaged_images: list[str]
    #: stored images that the input of the last ``run --append`` no longer listed (kept)
    gone_at_last_append: NotRequired[int]


class Summary(TypedDict):
    """What :meth:`StoreView.summary` returns (``batchseg stats --json`` prints it as is).

    ``classes`` and ``mean_confidence`` are there for class maps, ``regions`` for region
    labels, ``last_run_images_per_second`` once a run finished.
    """

    store: str
    method: str
    params: dict[str, Any]
    images: int
    done: int
    failed: int
    pending: int
    damaged: int
    pixels: int
    shapes: int
    classes: NotRequired[dict[str, dict[str, Any]]]
    mean_confidence: NotRequired[float | None]
    regions: NotRequired[dict[str, Any]]
    seconds_per_image: NotRequired[dict[str, float] | None]
    runs: NotRequired[list[dict[str, Any]]]
    last_run_images_per_second: NotRequired[float]
    #: stored evaluations by name: their dataset values (no confusion matrix; see evaluations())
    evaluations: NotRequired[dict[str, dict[str, Any]]]
