"""The job's identity includes its stack options, and only when given (older stores keep theirs)."""

from __future__ import annotations

from batchseg.io.sources import ImageRef
from batchseg.job.fingerprint import fingerprint
from batchseg.methods import get_method


def test_stack_options_change_the_identity_only_when_given() -> None:
    method = get_method("skimage.otsu")
    params = method.resolve_params({})
    refs = [ImageRef("a.tif#z=0", "/d/a.tif#z=0"), ImageRef("a.tif#z=1", "/d/a.tif#z=1")]
    plain = fingerprint(refs, method, params)
    assert fingerprint(refs, method, params, stacks={}) == plain
    one = fingerprint(refs, method, params, stacks={"planes": "z", "channels": "1"})
    other = fingerprint(refs, method, params, stacks={"planes": "z", "channels": "0"})
    assert len({plain, one, other}) == 3
