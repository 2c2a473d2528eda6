"""An ETA that is not wildly off: estimated only after a few shards, without the first one.

The first shard of a job carries the workers' warm-up (imports, model loading), so an ETA from
it alone is far too long (or, with many workers finishing at once, far too short). The rate is
measured from the moment the first shard finished, and shown once ``min_updates`` more shards
finished since then.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("batchseg")


class EtaEstimator:
    """Feed it ``update(finished, total)`` after each shard; read ``text()`` and ``rate()``."""

    def __init__(
        self, min_updates: int = 3, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.min_updates = min_updates
        self.clock = clock
        self.start = clock()
        self.first: tuple[float, int] | None = None  # (time, images) when the first shard ended
        self.updates = 0
        self.finished = 0
        self.total = 0
        self.now = self.start

    def update(self, finished: int, total: int) -> None:
        """``finished`` images (done or failed) of ``total`` so far."""
        self.now = self.clock()
        self.finished, self.total = finished, total
        if self.first is None:
            self.first = (self.now, finished)
        else:
            self.updates += 1

    def rate(self) -> float:
        """Images per second since the start (what the progress line shows as throughput)."""
        return self.finished / max(1e-9, self.now - self.start)

    def seconds_left(self) -> float | None:
        """Estimated seconds to finish; None until enough shards finished to estimate."""
        if self.finished >= self.total and self.total:
            return 0.0
        if self.first is None or self.updates < self.min_updates:
            return None
        t0, n0 = self.first
        elapsed, images = self.now - t0, self.finished - n0
        if elapsed <= 0 or images <= 0:
            return None
        return (self.total - self.finished) * elapsed / images

    def text(self) -> str:
        """``"ETA 42 s"``, or ``"ETA after a few shards"`` while it cannot be estimated yet."""
        left = self.seconds_left()
        return "ETA after a few shards" if left is None else f"ETA {left:.0f} s"


@contextmanager
def progress_reporter(verb: str) -> Iterator[Callable[[int, int, int], None]]:
    """``update(done, failed, total)``: a rich progress bar on a terminal (``verb`` leads it),
    a log line every 10 s otherwise; the ETA is shown once a few tasks have finished."""
    eta = EtaEstimator()
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(
            TextColumn(verb),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]:.1f} img/s"),
            TextColumn("{task.fields[eta]}"),
            transient=False,
        ) as bar:
            task = bar.add_task(verb, total=None, failed=0, rate=0.0, eta="")

            def update(done: int, failed: int, total: int) -> None:
                eta.update(done + failed, total)
                bar.update(
                    task,
                    completed=done + failed,
                    total=total,
                    failed=failed,
                    rate=eta.rate(),
                    eta=eta.text(),
                )

            yield update
        return
    last = [0.0]

    def log_line(done: int, failed: int, total: int) -> None:
        eta.update(done + failed, total)
        now = time.perf_counter()
        if now - last[0] < 10 and done + failed < total:
            return
        last[0] = now
        log.info(
            "progress: %d/%d done, %d failed, %.1f images/s, %s",
            done + failed,
            total,
            failed,
            eta.rate(),
            eta.text(),
        )

    yield log_line
