"""Tests for batchseg.job.fingerprint over columns: hashing a batch of images at a time gives
the digest of hashing them one by one (stores written before columns keep their identity)."""

from __future__ import annotations

import pytest

from batchseg.core.refcolumns import from_refs
from batchseg.io.sources import ImageRef
from batchseg.job import fingerprint as fp
from batchseg.methods import get_method


def test_columns_hash_as_refs_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "PAIR_BATCH", 3)  # several batches
    method = get_method("skimage.otsu")
    params = method.resolve_params({})
    refs = [ImageRef(f"d/ï{i:02d}.png", f"/data/d/ï{i:02d}.png") for i in range(10)]
    columns = from_refs(refs)
    assert fp.fingerprint(columns, method, params) == fp.fingerprint(refs, method, params)
    other = from_refs([*refs[:9], ImageRef("d/x.png", "/data/d/x.png")])
    assert fp.fingerprint(other, method, params) != fp.fingerprint(refs, method, params)
