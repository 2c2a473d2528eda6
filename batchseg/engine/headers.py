"""Read every image's header (its size) before planning: on the launcher while the cluster
starts, then on the cluster for what is left.

An embedded cluster takes seconds to start (worker processes, imports). Its workers read the
same files as this process, so the launcher reads headers in a thread meanwhile
(:class:`HeaderScan`); once the cluster is up, the batches no thread has begun go to the
workers. A remote cluster's files may not be readable here: its scan runs on the cluster only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from distributed import Client

from batchseg.core.refcolumns import RefColumns
from batchseg.errors import one_line
from batchseg.io import read as readers
from batchseg.io.sources import ImageRef

#: Images per header task (and per launcher batch).
HEADER_BATCH = 512
#: Launcher threads reading headers while the cluster starts. One: a header read is mostly
#: Python, and two threads fighting for the GIL read 50,000 small PNGs in 6.5 s against 3.4 s.
LOCAL_THREADS = 1

Header = tuple[int, int] | tuple[int, int, bool] | str


def header_of(uri: str, max_pixels: int | None, tile_threshold: int | None) -> Header:
    """(height, width), or (height, width, windowed) above ``tile_threshold``; else the error.

    ``windowed`` says whether the image can be read in windows (TIFF/Zarr), and so tiled.
    """
    try:
        h, w = readers.read_header(uri, max_pixels=max_pixels, windowed_above=tile_threshold)
        if tile_threshold is not None and h * w > tile_threshold:
            if max_pixels is not None and h * w > max_pixels:
                return h, w, True  # read_header accepted it only because it is windowed
            from batchseg.io.windowed import windowed_header

            return h, w, windowed_header(uri) is not None
        return h, w
    except Exception as exc:  # noqa: BLE001 - recorded per image
        return one_line(exc)


def headers_of(
    uris: Sequence[str], max_pixels: int | None, tile_threshold: int | None = None
) -> list[Header]:
    """:func:`header_of` for each of ``uris`` (one task's batch)."""
    return [header_of(uri, max_pixels, tile_threshold) for uri in uris]


class HeaderScan:
    """The headers of ``refs``; sizes known from a manifest are not read again.

    ``local=True`` starts reading at once in launcher threads; :meth:`finish` hands the batches
    not yet begun to the cluster (when there is one) and returns every header in ref order.
    Columns (:class:`~batchseg.core.refcolumns.RefColumns`) that hold every size need no
    scan: :meth:`finish` then returns None (the planner reads the columns' sizes).
    """

    def __init__(
        self,
        refs: Sequence[ImageRef],
        max_pixels: int | None,
        tile_threshold: int | None = None,
        *,
        local: bool = False,
    ) -> None:
        self.pool: ThreadPoolExecutor | None = None
        self.local: list[Future[list[Header]]] = []
        self.sized = isinstance(refs, RefColumns) and bool(refs.sized().all())
        if self.sized:
            return
        self.uris = [r.uri for r in refs]
        self.args = (max_pixels, tile_threshold)
        self.result: list[Header] = [
            (int(r.height), int(r.width)) if r.height is not None and r.width is not None else ""
            for r in refs
        ]
        todo = [i for i, r in enumerate(refs) if r.height is None or r.width is None]
        self.batches = [todo[i : i + HEADER_BATCH] for i in range(0, len(todo), HEADER_BATCH)]
        if local and self.batches:
            self.pool = ThreadPoolExecutor(LOCAL_THREADS, thread_name_prefix="batchseg-headers")
            self.local = [
                self.pool.submit(headers_of, [self.uris[i] for i in b], *self.args)
                for b in self.batches
            ]

    def finish(self, client: Client | None) -> list[Header] | None:
        """Every header, in ref order: launcher batches already begun finish here, the others
        run on ``client``'s workers (or here, without a client). None for sized columns."""
        if self.sized:
            return None
        remote = {}
        if client is not None:
            token = uuid.uuid4().hex[:8]
            for n, batch in enumerate(self.batches):
                if n < len(self.local) and not self.local[n].cancel():
                    continue  # begun (or done) on the launcher
                remote[n] = client.submit(
                    headers_of,
                    [self.uris[i] for i in batch],
                    *self.args,
                    key=f"headers-{token}-{n}",
                    pure=False,
                )
        try:
            for n, batch in enumerate(self.batches):
                if n in remote:
                    values = remote[n].result()
                elif n < len(self.local):
                    values = self.local[n].result()
                else:
                    values = headers_of([self.uris[i] for i in batch], *self.args)
                for i, value in zip(batch, values, strict=True):
                    self.result[i] = value
        finally:
            self.close()
        return self.result

    def close(self) -> None:
        """Stop the launcher threads (batches not begun are dropped)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def scan_headers(
    client: Client,
    refs: Sequence[ImageRef],
    max_pixels: int | None,
    tile_threshold: int | None = None,
) -> list[Header]:
    """A :func:`header_of` per ref, read on the cluster (sizes the refs carry are not read)."""
    found = HeaderScan(list(refs), max_pixels, tile_threshold).finish(client)
    return [] if found is None else found
