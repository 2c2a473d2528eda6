"""Which test files ``make test`` starts first, and which it keeps in one test process.

Read by ``tests/conftest.py`` (collection order and the pytest-xdist scheduler); checked by
``tests/test_suite_order.py``.
"""

from __future__ import annotations

#: Test files that run torch models, on the session cluster too. ``make test`` keeps them in one
#: test process (one scope for pytest-xdist): torch is then imported by one pytest process and
#: its two cluster workers rather than by both, and the test model is trained once.
TORCH_FILES = (
    "tests/job/test_run_semantic.py",
    "tests/methods/test_semantic.py",
    "tests/job/test_instance_job.py",
    "tests/methods/test_instance.py",
    "tests/engine/tiled/test_tiled_semantic.py",
    "tests/methods/test_preflight.py",
    "tests/methods/test_param_validation.py",
    "tests/methods/test_cellpose.py",
    "tests/methods/test_sam.py",
)

#: The slowest test files (tens of seconds each on the 2-core machine; ``make test`` prints the
#: slowest tests), run first: ``make test`` hands whole files to two processes in collection
#: order (``--dist loadfile --no-loadscope-reorder``), so the long ones start early and the many
#: short ones even out the end. The other files keep their order.
SLOW_FILES = (
    "tests/cluster/test_slurm.py",
    *TORCH_FILES,
    "tests/job/test_reliability.py",
    "tests/engine/tiled/test_tiled_job.py",
    "tests/store/test_object_store.py",
    "tests/store/test_consolidate_crash.py",
    "tests/job/test_bad_inputs.py",
    "tests/cluster/test_cluster_processes.py",
    "tests/export/test_ome_zarr_tiled.py",
    "tests/test_api_jobs.py",  # three embedded clusters (doctests) and a script's own
)
