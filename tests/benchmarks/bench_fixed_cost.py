"""Fixed cost of an embedded-cluster run, phase by phase, each round in a fresh process.

    python -m tests.benchmarks.bench_fixed_cost --rounds 3

Per round, a fresh interpreter (timed from outside, interpreter start and exit included) does
what ``batchseg run`` does before its first task and after its last result: import the CLI,
start the fork server and import the cluster modules, start the embedded cluster
(:func:`batchseg.cluster.local.start_local`, 2 workers x 1 thread, the job's method preloaded),
run one trivial task, close the cluster. Prints one line per round and, last, JSON with the
medians. The issue 30 target is <= 1.5 s for command to first task plus last result to exit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

T0 = time.perf_counter()

PHASES = ("cli_imports", "cluster_imports", "cluster_start", "first_task", "close")


def one_round() -> dict[str, float]:
    """The phases in this process (seconds)."""
    marks = [T0]
    from batchseg.cli import app  # noqa: F401

    marks.append(time.perf_counter())
    from batchseg.cluster import forkserver

    forkserver.start()
    from batchseg.cluster.local import METHOD_ENV, start_local

    marks.append(time.perf_counter())
    handle = start_local(2, 1, worker_env={METHOD_ENV: "skimage.otsu"})
    marks.append(time.perf_counter())
    handle.client.submit(sum, [1, 2]).result()
    marks.append(time.perf_counter())
    handle.close()
    marks.append(time.perf_counter())
    return {name: round(b - a, 3) for name, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_round()), flush=True)
        return
    rows = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.bench_fixed_cost", "--child"],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["process"] = round(time.perf_counter() - start, 3)
        row["outside_phases"] = round(row["process"] - sum(row[p] for p in PHASES), 3)
        print(row, flush=True)
        rows.append(row)
    print(json.dumps({k: statistics.median(r[k] for r in rows) for k in rows[0]}))


if __name__ == "__main__":
    main()
