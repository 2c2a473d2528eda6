"""The parts of a plan: shape buckets and shards (re-exported by :mod:`batchseg.core.plan`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    """All images of one (height, width); their labels share one array."""

    index: int
    height: int
    width: int
    shard_size: int  # images per shard in this bucket (<= the plan's shard size)
    n_shards: int
    tile: int = 0  # > 0: one huge image, segmented in tiles of this side

    @property
    def name(self) -> str:
        prefix = "t" if self.tile else "b"
        return f"{prefix}{self.index:05d}_{self.height}x{self.width}"

    @property
    def rows(self) -> int:
        """Rows of the bucket's label array (whole shards)."""
        return self.n_shards * self.shard_size


@dataclass(frozen=True)
class Shard:
    """The unit of work: images of one bucket, written as whole aligned chunks."""

    index: int
    bucket: int
    bucket_shard: int  # position of this shard within its bucket
    image_ids: tuple[str, ...]
    uris: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.image_ids)
