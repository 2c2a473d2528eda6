"""The embedded cluster's set-up that leans on distributed's internals, pinned."""

from __future__ import annotations

import multiprocessing.forkserver as mp_forkserver

import dask
from distributed import utils

from batchseg.cluster import forkserver, local


def test_workers_fork_with_batchseg_preload(monkeypatch):
    """distributed replaces the fork server's preload list with its own (every optional package
    it knows) unless its private ``_forkserver_preload_set`` flag is up: batchseg raises it.
    If distributed renames or drops the flag, this fails instead of workers forking cold."""
    assert hasattr(utils, "_forkserver_preload_set")
    server = mp_forkserver._forkserver  # noqa: SLF001 - the context's one fork server
    monkeypatch.setattr(utils, "_forkserver_preload_set", False)
    monkeypatch.setattr(server, "_preload_modules", ["__main__"])
    with dask.config.set(local._forkserver()):  # noqa: SLF001
        ctx = utils.get_mp_context()  # what each Nanny calls before starting its worker
    assert ctx.get_start_method() == "forkserver"
    assert server._preload_modules == forkserver.PRELOAD  # noqa: SLF001
