"""Image references held as columns: one Arrow string array of ids, sizes as numpy arrays.

A 10^7-image collection as :class:`~batchseg.core.refs.ImageRef` tuples costs about 700 bytes
an image (two ``str`` objects, a tuple, list slots); as columns it costs the id's UTF-8 bytes
plus about 12 (an offset and two 32-bit sizes). :class:`RefColumns` is a read-only
``Sequence[ImageRef]``, so code that walks images one by one keeps working; the launcher's
planning, fingerprint and catalogue read the columns directly.

A uri is the ``uri_prefix`` and the id (``/data/cam1/`` + ``a.png``) unless the columns hold
a uri array of their own (``uris``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import numpy as np

from batchseg.core.refs import ImageRef

if TYPE_CHECKING:  # pyarrow is imported where columns are made or read, not with this module
    import pyarrow as pa

    #: Arrow strings: one array, or the chunks of a manifest's blocks.
    Strings: TypeAlias = pa.Array | pa.ChunkedArray

log = logging.getLogger(__name__)

#: Images converted to Python objects at a time when the columns are walked one by one.
ITER_BATCH = 1 << 16
#: Stored for a size a manifest does not give (the header scan reads it).
UNKNOWN = -1


class RefColumns(Sequence[ImageRef]):
    """Image references as columns (see the module docstring), sorted or not.

    Parameters
    ----------
    ids
        Image ids (Arrow strings, no nulls).
    heights, widths
        Sizes (int32, :data:`UNKNOWN` where not given).
    uri_prefix
        What comes before an id to make its uri (when ``uris`` is None).
    uris
        Each image's uri, where a prefix cannot make it.
    """

    def __init__(
        self,
        ids: Strings,
        heights: np.ndarray,
        widths: np.ndarray,
        *,
        uri_prefix: str = "",
        uris: Strings | None = None,
    ) -> None:
        self.ids = _plain_strings(ids)
        self.uris = None if uris is None else _plain_strings(uris)
        self.uri_prefix = uri_prefix
        self.heights = np.asarray(heights, dtype=np.int32)
        self.widths = np.asarray(widths, dtype=np.int32)
        if not (len(self.ids) == self.heights.size == self.widths.size):
            raise ValueError("ids and sizes differ in length")
        if self.uris is not None and len(self.uris) != len(self.ids):
            raise ValueError("ids and uris differ in length")

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> ImageRef: ...
    @overload
    def __getitem__(self, index: slice) -> RefColumns: ...
    def __getitem__(self, index: int | slice) -> ImageRef | RefColumns:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return self.take(np.arange(len(self))[index])
            stop = max(start, stop)
            return RefColumns(  # a view: nothing is copied
                self.ids[start:stop],
                self.heights[start:stop],
                self.widths[start:stop],
                uri_prefix=self.uri_prefix,
                uris=None if self.uris is None else self.uris[start:stop],
            )
        i = range(len(self))[index]
        return self._ref(
            self.ids[i].as_py(),
            None if self.uris is None else self.uris[i].as_py(),
            int(self.heights[i]),
            int(self.widths[i]),
        )

    def _ref(self, image_id: str, uri: str | None, h: int, w: int) -> ImageRef:
        known = h != UNKNOWN and w != UNKNOWN
        return ImageRef(
            image_id,
            self.uri_prefix + image_id if uri is None else uri,
            h if known else None,
            w if known else None,
        )

    def __iter__(self) -> Iterator[ImageRef]:
        for start in range(0, len(self), ITER_BATCH):
            stop = min(len(self), start + ITER_BATCH)
            ids = self.ids[start:stop].to_pylist()
            uris = [None] * len(ids) if self.uris is None else self.uris[start:stop].to_pylist()
            hs, ws = self.heights[start:stop].tolist(), self.widths[start:stop].tolist()
            for image_id, uri, h, w in zip(ids, uris, hs, ws, strict=True):
                yield self._ref(image_id, uri, h, w)

    def take(self, indices: Any) -> RefColumns:
        """The references at ``indices`` (an integer array), in that order."""
        import pyarrow as pa

        idx = pa.array(np.asarray(indices, dtype=np.int64))
        return RefColumns(
            self.ids.take(idx),
            self.heights[np.asarray(indices)],
            self.widths[np.asarray(indices)],
            uri_prefix=self.uri_prefix,
            uris=None if self.uris is None else self.uris.take(idx),
        )

    def uri_array(self, start: int = 0, stop: int | None = None) -> Strings:
        """The uris of rows ``[start, stop)`` as an Arrow string array."""
        import pyarrow.compute as pc

        stop = len(self) if stop is None else stop
        if self.uris is not None:
            return self.uris[start:stop]
        ids = self.ids[start:stop]
        if not self.uri_prefix:
            return ids
        return pc.binary_join_element_wise(self.uri_prefix, ids, "")

    def sized(self) -> np.ndarray:
        """Whether each image's size is known (given by the manifest)."""
        return (self.heights != UNKNOWN) & (self.widths != UNKNOWN)

    def nbytes(self) -> int:
        """Bytes the columns hold."""
        uris = 0 if self.uris is None else self.uris.nbytes
        return int(self.ids.nbytes + uris + self.heights.nbytes + self.widths.nbytes)


def _plain_strings(values: Strings) -> Strings:
    """Arrow strings without nulls; a chunked array (a manifest's blocks) stays chunked, as
    combining its chunks would hold the column twice."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray) and values.num_chunks == 1:
        values = values.chunk(0)
    if values.null_count:
        raise ValueError("image ids and uris may not be null")
    return values


def from_refs(refs: Sequence[ImageRef]) -> RefColumns:
    """``refs`` as columns (each uri kept as given)."""
    if isinstance(refs, RefColumns):
        return refs
    import pyarrow as pa

    n = len(refs)
    ids = pa.array([r.image_id for r in refs], type=pa.string())
    uris = pa.array([r.uri for r in refs], type=pa.string())
    h = np.fromiter((UNKNOWN if r.height is None else r.height for r in refs), np.int32, n)
    w = np.fromiter((UNKNOWN if r.width is None else r.width for r in refs), np.int32, n)
    return RefColumns(ids, h, w, uris=uris)


def string_buffer(values: Strings) -> memoryview:
    """The UTF-8 bytes of all of ``values`` one after another (Arrow's data buffer)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()

    offsets_buffer, data = values.buffers()[1], values.buffers()[2]
    wide = pa.types.is_large_string(values.type)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if wide else np.int32)
    first, last = int(offsets[values.offset]), int(offsets[values.offset + len(values)])
    if data is None:
        return memoryview(b"")
    return memoryview(data)[first:last]


def sorted_unique_columns(refs: RefColumns) -> RefColumns:
    """``refs`` sorted by id (code point order, as Python sorts), the first of each id kept.

    The columns are reordered in place (``refs`` is returned): each old column is let go of
    as its sorted copy is made, so no more than one column is ever held twice.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(refs.ids, pa.ChunkedArray):  # take() would concatenate it behind our back
        refs.ids = refs.ids.combine_chunks()
    order = None
    if len(refs) > 1 and not pc.all(pc.less_equal(refs.ids[:-1], refs.ids[1:])).as_py():
        order = pc.sort_indices(refs.ids).to_numpy()  # stable: equal ids keep their input order
        _reorder(refs, order)
    if len(refs) > 1:
        repeat = pc.equal(refs.ids[1:], refs.ids[:-1]).to_numpy(zero_copy_only=False)
        duplicates = int(repeat.sum())
        if duplicates:
            log.warning(
                "ignored %d duplicate entr%s", duplicates, "y" if duplicates == 1 else "ies"
            )
            _reorder(refs, np.flatnonzero(np.concatenate([[True], ~repeat])))
    pa.default_memory_pool().release_unused()
    return refs


def _reorder(refs: RefColumns, order: np.ndarray) -> None:
    """Take rows ``order`` of every column of ``refs``, one column at a time."""
    import pyarrow as pa

    index = pa.array(np.asarray(order, dtype=np.int64))
    refs.ids = refs.ids.take(index)
    if refs.uris is not None:
        refs.uris = refs.uris.take(index)
    refs.heights = refs.heights[order]
    refs.widths = refs.widths[order]
