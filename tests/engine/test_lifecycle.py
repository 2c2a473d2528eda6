"""The job runner's lifecycle glue (batchseg.engine.lifecycle): failure reasons and recording of
outcomes, without a cluster (the outcomes are made here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from distributed.scheduler import KilledWorker

from batchseg.engine.lifecycle import TaskKind, drain, failure_reason
from batchseg.errors import StoreError


class _Lock:
    """A launcher lock that counts its checks."""

    def __init__(self) -> None:
        self.checks = 0

    def check(self) -> None:
        self.checks += 1


def _kind(failures: dict[Any, str], *, writes: bool = True) -> TaskKind[Any, Any]:
    def record_failure(item: Any, reason: str) -> int:
        failures[item] = reason
        return 2

    return TaskKind(
        "test", pow, None, str, lambda item: 2, lambda item, result: (result, 2 - result),
        record_failure, writes=writes,
    )  # fmt: skip


def _outcomes(pairs: list[tuple[Any, Any]]) -> Any:
    yield from pairs


def test_killed_worker_reason_is_one_clean_line() -> None:
    exc = KilledWorker("shard-ab12cd34-7", SimpleNamespace(address="tcp://127.0.0.1:4242"), 2)
    reason = failure_reason(exc)
    assert reason == (
        "KilledWorker: the worker running this task died on 3 workers, the last "
        "tcp://127.0.0.1:4242; see the worker logs"
    )
    assert "task failed" not in reason and "shard-ab12cd34" not in reason


def test_other_errors_are_their_one_line() -> None:
    reason = failure_reason(ValueError("bad\n  value"))
    assert reason == "ValueError: bad value"
    assert len(failure_reason(RuntimeError("x" * 2000))) <= 487


def test_drain_records_results_failures_and_progress() -> None:
    failures: dict[Any, str] = {}
    progress: list[tuple[int, int, int]] = []
    lock = _Lock()
    outcomes = [("a", 2), ("b", ZeroDivisionError("division by zero")), ("c", 1)]
    processed = drain(
        _outcomes(outcomes), _kind(failures), output="o.zarr", lock=lock, total=6,  # type: ignore[arg-type]
        on_progress=lambda *p: progress.append(p),
    )  # fmt: skip
    assert processed == 6
    assert failures == {"b": "ZeroDivisionError: division by zero"}
    assert progress == [(2, 0, 6), (2, 2, 6), (3, 3, 6)]
    assert lock.checks == 3  # before every record


def test_storage_error_stops_a_writing_kind_but_not_a_scoring_one() -> None:
    failures: dict[Any, str] = {}
    outcomes = [("a", PermissionError(13, "Permission denied"))]
    with pytest.raises(StoreError, match="cannot write to o.zarr: Permission denied"):
        drain(_outcomes(outcomes), _kind(failures), output="o.zarr", lock=_Lock(), total=2)  # type: ignore[arg-type]
    assert failures == {}
    kind = _kind(failures, writes=False)
    assert drain(_outcomes(outcomes), kind, output="o.zarr", lock=_Lock(), total=2) == 2  # type: ignore[arg-type]
    assert failures == {"a": "PermissionError: [Errno 13] Permission denied"}
