"""One contender of the throughput benchmark, run in a fresh process by ``run.py``.

    python -m tests.benchmarks.bench_throughput CONTENDER --method ID --images LIST --out DIR

Contenders (all do :func:`bench_common.process_one` per image, the same list, the same writes):

* ``single``        plain loop in this process (gives the single-core rate r1)
* ``single_timed``  the same loop with a clock per step (decode / kernel / cast / encode / write)
* ``pool``          ``multiprocessing.Pool(workers)``, ``imap`` over chunks of ``--chunk`` images
* ``dask_bag``      ``dask.bag.from_sequence(npartitions=2*8).map`` on a default
                    ``LocalCluster(n_workers=workers, threads_per_worker=1)``
* ``dask_delayed``  one ``dask.delayed`` task per image on the same kind of cluster
* ``dask_tasks``    per-task cost: the same warm cluster runs 1-image tasks, then shards
* ``ray_data``      ``ray.data.from_items(...).map_batches(batch_size=--chunk)`` with
                    ``ray.init(num_cpus=workers)``

The last stdout line is a JSON object: ``startup_s`` (pool / cluster / Ray start),
``compute_s`` (the map itself), ``images``, plus contender-specific fields. ``run.py`` also
times the whole process from outside (interpreter start and imports included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.benchmarks import bench_common as bc


def _single(paths: list[str], out: str, method: str, params: str, **_: Any) -> dict[str, Any]:
    bc.method_and_params(method, params)  # registry import outside the clock, as for workers
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i, p in enumerate(paths):
        bc.process_one(p, i, out, method, params)
    wall = time.perf_counter() - t0
    return {
        "startup_s": 0.0,
        "compute_s": wall,
        "cpu_per_wall": (time.process_time() - cpu0) / wall,
    }


def _single_timed(paths: list[str], out: str, method: str, params: str, **_: Any) -> dict[str, Any]:
    bc.method_and_params(method, params)
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        for k, v in bc.timed_one(p, i, out, method, params).items():
            steps[k] = steps.get(k, 0.0) + v
    wall = time.perf_counter() - t0
    return {
        "startup_s": 0.0,
        "compute_s": wall,
        "per_image_s": {k: v / len(paths) for k, v in steps.items()},
    }


def _pool(
    paths: list[str], out: str, method: str, params: str, workers: int, chunk: int, **_: Any
) -> dict[str, Any]:
    import multiprocessing

    bc.method_and_params(method, params)  # imported before the fork, as a user's script would
    items = list(enumerate(paths))
    t0 = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        t1 = time.perf_counter()
        done = sum(
            pool.imap_unordered(
                _PoolTask(out, method, params), bc.chunks(items, chunk), chunksize=1
            )
        )
        t2 = time.perf_counter()
    assert done == len(paths)
    return {"startup_s": t1 - t0, "compute_s": t2 - t1, "chunk": chunk}


class _PoolTask:
    def __init__(self, out: str, method: str, params: str) -> None:
        self.args = (out, method, params)

    def __call__(self, items: list[tuple[int, str]]) -> int:
        return bc.process_many(items, *self.args)


def _local_cluster(workers: int) -> tuple[Any, Any]:
    """A LocalCluster as a user starts one: default distributed config, 1 thread per worker."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
    return cluster, Client(cluster)


def _dask_bag(
    paths: list[str], out: str, method: str, params: str, workers: int, **_: Any
) -> dict[str, Any]:
    import dask.bag as db

    t0 = time.perf_counter()
    cluster, client = _local_cluster(workers)
    t1 = time.perf_counter()
    npartitions = 2 * 8
    bag = db.from_sequence(list(enumerate(paths)), npartitions=npartitions)
    sizes = bag.map(bc.process_item, out, method, params).compute()
    t2 = time.perf_counter()
    assert len(sizes) == len(paths)
    client.close()
    cluster.close()
    return {"startup_s": t1 - t0, "compute_s": t2 - t1, "npartitions": npartitions}


def _dask_delayed(
    paths: list[str], out: str, method: str, params: str, workers: int, **_: Any
) -> dict[str, Any]:
    import dask
    from dask import delayed

    t0 = time.perf_counter()
    cluster, client = _local_cluster(workers)
    t1 = time.perf_counter()
    tasks = [delayed(bc.process_one)(p, i, out, method, params) for i, p in enumerate(paths)]
    sizes = dask.compute(*tasks)
    t2 = time.perf_counter()
    assert len(sizes) == len(paths)
    client.close()
    cluster.close()
    return {"startup_s": t1 - t0, "compute_s": t2 - t1, "tasks": len(tasks)}


def _dask_tasks(
    paths: list[str], out: str, method: str, params: str, workers: int, chunk: int, **_: Any
) -> dict[str, Any]:
    """Per-task scheduling cost: 1-image tasks vs shard tasks on one warm cluster."""
    import dask
    from dask import delayed

    t0 = time.perf_counter()
    cluster, client = _local_cluster(workers)
    t1 = time.perf_counter()
    # warm the workers (imports, registry) with one small task each
    dask.compute(
        *[
            delayed(bc.process_many)([(i, p)], out, method, params)
            for i, p in enumerate(paths[:workers])
        ]
    )
    items = list(enumerate(paths))
    shard = max(1, math.ceil(len(paths) / (workers * 8)))
    timings = {}
    for label, size in (("shards", shard), ("one_image", 1), ("shards_again", shard)):
        parts = bc.chunks(items, size)
        ta = time.perf_counter()
        done = sum(dask.compute(*[delayed(bc.process_many)(c, out, method, params) for c in parts]))
        timings[label] = {"tasks": len(parts), "seconds": time.perf_counter() - ta}
        assert done == len(paths)
    client.close()
    cluster.close()
    shard_s = min(timings["shards"]["seconds"], timings["shards_again"]["seconds"])
    extra = timings["one_image"]["tasks"] - timings["shards"]["tasks"]
    per_task = (timings["one_image"]["seconds"] - shard_s) * workers / max(1, extra)
    return {
        "startup_s": t1 - t0,
        "compute_s": shard_s,
        "runs": timings,
        "shard_size": shard,
        "per_task_overhead_s": per_task,
    }


def _ray_data(
    paths: list[str], out: str, method: str, params: str, workers: int, chunk: int, **_: Any
) -> dict[str, Any]:
    # Ray workers on this machine must import tests.benchmarks like the driver does.
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    t0 = time.perf_counter()
    import ray  # its import is part of the startup a user pays

    ray.init(num_cpus=workers, log_to_driver=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    t1 = time.perf_counter()
    ds = ray.data.from_items([{"index": i, "path": p} for i, p in enumerate(paths)])
    rows = ds.map_batches(
        bc.ray_batch,
        batch_size=chunk,
        num_cpus=1,
        fn_kwargs={"out_dir": out, "method_id": method, "params_json": params},
    ).take_all()
    t2 = time.perf_counter()
    done = sum(int(r["done"]) for r in rows)
    assert done == len(paths), done
    ray.shutdown()
    return {"startup_s": t1 - t0, "compute_s": t2 - t1, "batch_size": chunk}


CONTENDERS = {
    "single": _single,
    "single_timed": _single_timed,
    "pool": _pool,
    "dask_bag": _dask_bag,
    "dask_delayed": _dask_delayed,
    "dask_tasks": _dask_tasks,
    "ray_data": _ray_data,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("contender", choices=sorted(CONTENDERS))
    ap.add_argument("--method", required=True)
    ap.add_argument("--params", default="{}", help="method parameters as JSON")
    ap.add_argument("--images", required=True, help="file with one image path per line")
    ap.add_argument("--out", required=True, help="folder for the compressed label files")
    ap.add_argument("--workers", type=int, default=bc.n_cores())
    ap.add_argument("--chunk", type=int, default=8, help="images per pool chunk / Ray batch")
    args = ap.parse_args(argv)
    paths = bc.read_list(args.images)
    os.makedirs(args.out, exist_ok=True)
    result = CONTENDERS[args.contender](
        paths,
        args.out,
        args.method,
        args.params,
        workers=args.workers,
        chunk=args.chunk,
    )
    result.update(
        contender=args.contender,
        method=args.method,
        images=len(paths),
        label_bytes=bc.dir_bytes(args.out),
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
