"""Append benchmark: ``batchseg run --append`` of 1,000 images to a store of 10^6 images.

Run: ``python -m tests.benchmarks.bench_append --out bench-results [--existing 1000000]``.

1. A CSV manifest with width/height columns lists ``--existing`` images (6 shapes, files that
   do not exist: their sizes come from the manifest, no header is read). The store of that
   manifest is created by the real planner and store code (``prepare_job``, ``plan_shards``,
   ``store.create``: the fingerprint a real run computes) and its rows are marked done with
   statistics, as finished tasks would leave them, then consolidated. No pixel is segmented.
2. 1,000 real PNGs are written (800 of a shape the store has, 200 of a new shape) and the
   manifest grows by them.
3. ``batchseg run GROWN.csv --append --scheduler ADDR`` runs in a child process against a
   2-worker LocalCluster started here, so the child's peak RSS is the launcher's alone;
   ``skimage.otsu``. Then a plain rerun of the grown manifest (``nothing to do``).
4. The phases, timed in one process on the grown store: reading the manifest, loading the
   stored plan, the identity check (fingerprint of the stored rows), the comparison with the
   input, and a forced rewrite of the consolidated table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

SHAPES = [(360, 480), (480, 640), (321, 481), (481, 321), (1080, 1920), (768, 1024)]
PY = sys.executable
BATCHSEG = str(Path(PY).with_name("batchseg"))

CREATE = """
import sys, time, numpy as np
from datetime import UTC, datetime
from batchseg import store
from batchseg.measure.stats import stats_columns
from batchseg.core.plan import auto_shard_size, plan_shards
from batchseg.job.prepare import prepare_job
from batchseg.job.provenance import package_versions
from batchseg.job.spec import build_spec
t = time.perf_counter()
job = prepare_job(build_spec({"input": sys.argv[1], "method": "skimage.otsu",
                              "output": sys.argv[2]}))
m, params, refs = job.method, job.params, job.refs
plan = plan_shards(refs, [(r.height, r.width) for r in refs], auto_shard_size(len(refs), 2))
classes = m.classes(params)
cols = stats_columns(m.kind, classes, confidence=False, objects=job.objects)
meta = {"job": job.spec.to_dict(), "method": {"id": m.id, "kind": m.kind, "family": m.family,
        "params": params}, "classes": classes, "colours": [[0, 0, 0], [255, 255, 255]],
        "fingerprint": job.fingerprint, "objects": job.objects, "versions": package_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds")}
root = store.create(sys.argv[2], plan, meta=meta, header_errors={},
    label_dtypes=[m.label_dtype(params, b.height, b.width) for b in plan.buckets],
    stats_columns=cols, confidence=False)
status = store.shard_status(root)
real = status != store.EMPTY
f = np.random.default_rng(0).random(status.size)
stats = np.full(root["stats"].shape, np.nan)
stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3], stats[:, 4] = f * 1e5, (1 - f) * 1e5, f, 1 - f, 0.01
stats[~real] = np.nan
status[real] = store.DONE
root["stats"][...] = stats
root["catalogue/status"][...] = status
store.consolidate(root)
print(time.perf_counter() - t, len(plan.shards), plan.shard_size)
"""

PHASES = """
import json, sys, time
from batchseg import store
from batchseg.io.sources import discover
from batchseg.job import append
from batchseg.job.prepare import prepare_job
from batchseg.job.spec import build_spec
out = {}
t = time.perf_counter()
refs = discover(sys.argv[1]); out["read_manifest_s"] = time.perf_counter() - t
job = prepare_job(build_spec({"input": sys.argv[1], "method": "skimage.otsu",
                              "output": sys.argv[2]}))
root = store.open_group(sys.argv[2], mode="r+")
t = time.perf_counter()
plan = store.load_plan(root); out["load_plan_s"] = time.perf_counter() - t
t = time.perf_counter()
same = append.same_job(store.attributes(root), plan, job)
out["identity_check_s"] = time.perf_counter() - t
t = time.perf_counter()
change = append.compare(plan, refs); out["compare_s"] = time.perf_counter() - t
t = time.perf_counter()
store.consolidate(root, force=True); out["consolidate_s"] = time.perf_counter() - t
out.update(same_job=same, new=len(change.new), rows=plan.n_rows)
print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
"""


def write_manifest(path: Path, n: int, extra: list[tuple[str, int, int]] = ()) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "width", "height"])
        for i in range(n):
            h, wd = SHAPES[i % len(SHAPES)]
            w.writerow([f"images/d{i // 1000:04d}/img_{i:07d}.jpg", wd, h])
        for name, h, wd in extra:
            w.writerow([name, wd, h])


def write_new_images(folder: Path, n: int) -> list[tuple[str, int, int]]:
    """``n`` grey PNGs: 80 % of the store's first shape, 20 % of a new one."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        h, w = SHAPES[0] if i < n * 4 // 5 else (120, 160)
        name = f"new/n{i:05d}.png"
        path = folder / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            img = (rng.random((h, w)) * 60).astype(np.uint8)
            img[h // 4 : h // 2, w // 4 : w // 2] = 200
            Image.fromarray(img).save(path)
        rows.append((name, h, w))
    return rows


def measured(cmd: list[str]) -> tuple[float, float, str, str]:
    """(wall seconds, peak RSS MiB of that child alone, stdout, stderr) of a child process."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise RuntimeError(f"{cmd} failed: {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024, stdout, stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--existing", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=1_000)
    args = ap.parse_args()
    work = Path(args.out).resolve() / "append"
    work.mkdir(parents=True, exist_ok=True)
    base, grown = work / f"base_{args.existing}.csv", work / f"grown_{args.existing}.csv"
    store_path = work / f"store_{args.existing}.zarr"
    write_manifest(base, args.existing)
    new_rows = write_new_images(work, args.new)
    write_manifest(grown, args.existing, new_rows)
    if store_path.exists():
        import shutil

        shutil.rmtree(store_path)
    t_create, rss_create, text, _ = measured([PY, "-c", CREATE, str(base), str(store_path)])
    t_plan_create, tasks, shard = text.split()
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        cmd = [BATCHSEG, "run", str(grown), "-m", "skimage.otsu", "-o", str(store_path),
               "--scheduler", cluster.scheduler_address]  # fmt: skip
        wall, rss, out, err = measured([*cmd, "--append"])
        wall_again, rss_again, out_again, _ = measured(cmd)
    appended = re.search(r"appended .*\((\d+\.\d) s\)", err)
    row = {
        "existing_images": args.existing,
        "new_images": args.new,
        "create_store_s": round(float(t_plan_create), 2),
        "create_process_wall_s": round(t_create, 2),
        "tasks_existing": int(tasks),
        "shard_size": int(shard),
        "append_wall_s": round(wall, 2),
        "append_launcher_peak_rss_mib": round(rss),
        "append_grow_publish_s": float(appended.group(1)) if appended else None,
        "append_stdout": out.strip(),
        # the launcher's own log lines (timestamps: where its time went)
        "append_log": [line for line in err.splitlines() if " batchseg." in line],
        "rerun_wall_s": round(wall_again, 2),
        "rerun_stdout": out_again.strip(),
    }
    phases = subprocess.run([PY, "-c", PHASES, str(grown), str(store_path)], check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    row.update(json.loads(phases))
    (work / "append.json").write_text(json.dumps(row, indent=2))
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
