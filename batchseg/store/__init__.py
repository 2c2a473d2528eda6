"""The package that owns the Zarr v3 store layout; nothing outside it spells a node path.

Layout (every node readable with plain zarr-python)::

    STORE/                       attrs["batchseg"]: schema, job, method, classes, plan, runs,
                                 consolidated + table_node (the current consolidated table)
      catalogue/image_id         str    (rows,)   written once by the planner
      catalogue/uri              str    (rows,)
      catalogue/height, width    uint32 (rows,)
      catalogue/bucket           int32  (rows,)   -1 on padding rows
      catalogue/bucket_row       int64  (rows,)   row in labels/<bucket>
      catalogue/status           int8   (rows,)   chunk = shard: 1 pending (fill), 2 done, 3 failed;
                                 any other code on a real row is damage
      catalogue/error            str    (rows,)   chunk = shard
      stats                      float64 (rows, columns), chunk = (shard, columns);
                                 attrs["columns"] names the columns
      labels/<bucket>            uint (bucket rows, H, W): chunk (1, H, W), shard = task shard
      confidence/<bucket>        uint8, same layout (semantic methods only)
      labels/t<...>              tiled image (one per bucket): (1, H, W), chunk (1, T, T)
      pyramid/<bucket>/<l>       its label pyramid, level l = labels[::2^l, ::2^l],
                                 chunk (1, T/2^l, T/2^l); written during the job
      table-<id>/                the consolidated table (``table/`` in older stores)

Shard ``k`` of the plan owns rows ``[k*S, (k+1)*S)`` of every per-row array and rows
``[j*s, (j+1)*s)`` of its bucket's arrays, so tasks write whole chunks/shards only.

New stores add a crc32c checksum as the last bytes-to-bytes codec of every label, confidence,
pyramid, catalogue, stats and table array, and store all-fill chunks too (attribute
``empty_chunks_written``), so lost or flipped bytes are reported, never read as labels.
Older stores (without both) keep reading.

Modules: :mod:`~batchseg.store.paths` (local paths and URLs), :mod:`~batchseg.store.layout`
(node names, status codes, codecs, create), :mod:`~batchseg.store.read` (open, attributes,
catalogue, checked label reads), :mod:`~batchseg.store.write` (task writes, row updates),
:mod:`~batchseg.store.table` (consolidated table), :mod:`~batchseg.store.verify` (integrity
check), :mod:`~batchseg.store.lock` and :mod:`~batchseg.store.replace` (the launcher's).
"""

from __future__ import annotations

from batchseg.store.layout import (
    ATTRS_KEY,
    CHUNKS_WRITTEN_KEY,
    CREATING_KEY,
    DAMAGED,
    DONE,
    EMPTY,
    FAILED,
    KNOWN_STATUS,
    PENDING,
    SCHEMA_VERSION,
    STATUS_NAMES,
    create,
    exists,
    incomplete_fingerprint,
    label_codec,
    label_codecs,
    pyramid_levels,
    table_codec,
    table_codecs,
)
from batchseg.store.object_check import objects_frame
from batchseg.store.paths import is_url, normalise_path, path_exists, remove
from batchseg.store.read import (
    ImageInfo,
    array,
    attributes,
    find_row,
    image_info,
    image_infos,
    image_uri,
    label_array,
    load_plan,
    needs_work,
    normalise_status,
    open_group,
    pyramid_array,
    read_array,
    read_checked,
    read_labels,
    read_map,
    read_meta,
    shard_status,
    update_attributes,
)
from batchseg.store.table import (
    consolidate,
    invalidate_consolidated,
    read_table,
    table_columns,
)
from batchseg.store.verify import VerifyReport, verify
from batchseg.store.write import (
    ShardBlock,
    create_scratch,
    drop_scratch,
    mark_pending,
    read_scratch_tile,
    read_tile,
    record_shard_failure,
    write_shard,
    write_tile,
)

__all__ = [
    "ATTRS_KEY",
    "CHUNKS_WRITTEN_KEY",
    "CREATING_KEY",
    "DAMAGED",
    "DONE",
    "EMPTY",
    "FAILED",
    "KNOWN_STATUS",
    "PENDING",
    "SCHEMA_VERSION",
    "STATUS_NAMES",
    "ImageInfo",
    "ShardBlock",
    "VerifyReport",
    "array",
    "attributes",
    "consolidate",
    "create",
    "create_scratch",
    "drop_scratch",
    "exists",
    "find_row",
    "image_info",
    "image_infos",
    "image_uri",
    "incomplete_fingerprint",
    "invalidate_consolidated",
    "is_url",
    "label_array",
    "label_codec",
    "label_codecs",
    "load_plan",
    "mark_pending",
    "needs_work",
    "normalise_path",
    "normalise_status",
    "objects_frame",
    "open_group",
    "path_exists",
    "pyramid_array",
    "pyramid_levels",
    "read_array",
    "read_checked",
    "read_labels",
    "read_map",
    "read_meta",
    "read_scratch_tile",
    "read_table",
    "read_tile",
    "record_shard_failure",
    "remove",
    "shard_status",
    "table_codec",
    "table_codecs",
    "table_columns",
    "update_attributes",
    "verify",
    "write_shard",
    "write_tile",
]
