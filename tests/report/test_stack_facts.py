"""The report says how a stack job read its images: planes, channels seen and measured."""

from __future__ import annotations

from batchseg.report.facts import describe_stacks


def test_stack_jobs_are_described_others_not() -> None:
    job = {"planes": "zt", "channels": "1"}
    assert describe_stacks(job, ["DAPI", "GFP"]) == (
        "every z/t plane an image; the method saw GFP; channels measured: DAPI, GFP"
    )
    rgb = describe_stacks({"channels": "3,2,1", "project": "max"}, [])
    assert rgb == "z projected by max; the method saw channel 3, channel 2, channel 1 as RGB"
    assert describe_stacks({"channels": "mean"}, []) == "the method saw the mean of all channels"
    assert describe_stacks({"method": "x"}, []) == ""
