"""Shared fixtures: seeded synthetic collections and a real distributed cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_image(rng: np.random.Generator, height: int, width: int, colour: bool) -> np.ndarray:
    """Bright discs on a dark noisy background (so thresholds and SLIC have structure)."""
    yy, xx = np.mgrid[:height, :width]
    image = rng.normal(40, 10, (height, width))
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        r = rng.integers(min(height, width) // 10 + 2, min(height, width) // 4 + 3)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.normal(200, 15)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if colour:
        tint = np.stack([image, np.roll(image, 3, axis=1), image // 2], axis=-1)
        return tint.astype(np.uint8)
    return image


def write_collection(folder: Path, n: int = 24, seed: int = 0) -> list[Path]:
    """``n`` PNG/JPEG images of three shapes in two subfolders."""
    rng = np.random.default_rng(seed)
    shapes = [(48, 64), (64, 48), (40, 40)]
    paths = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        sub = folder / ("grey" if i % 2 else "colour")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i:03d}.png"
        Image.fromarray(make_image(rng, h, w, colour=not i % 2)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_collection(folder)
    return folder


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    """A real multi-process LocalCluster shared by a test module (attached with --scheduler)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def dask_processes_cluster(n_workers: int = 2) -> Iterator[str]:
    """A ``dask scheduler`` and ``n_workers`` ``dask worker`` processes on loopback."""
    import gc
    import subprocess
    import sys
    import time

    from distributed import Client

    dask_bin = str(Path(sys.executable).with_name("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [dask_bin, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    procs = [subprocess.Popen([*scheduler, "--dashboard-address", ":0"], **quiet)]
    worker = [dask_bin, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"]
    procs += [subprocess.Popen(worker, **quiet) for _ in range(n_workers)]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="5s") as c:
                    if len(c.scheduler_info()["workers"]) == n_workers:
                        break
            except OSError:
                gc.collect()  # see batchseg.cluster.connect.connect: collect the failed Client now
            assert time.monotonic() < deadline, "dask processes did not start"
            time.sleep(0.2)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
