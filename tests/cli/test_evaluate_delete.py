"""Issue 27 item 22: ``batchseg evaluate STORE --delete NAME`` removes a stale evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import batchseg
from batchseg import store
from batchseg.errors import StoreError, UsageError
from batchseg.store.evaluations import write_evaluation
from batchseg.store.lock import store_lock
from tests.helpers.cli import run_cli
from tests.helpers.object_stores import build_object_store


@pytest.fixture
def scored(tmp_path: Path) -> Path:
    """A store with two stored evaluations, ``gt`` and ``stale``."""
    out = tmp_path / "s.zarr"
    maps = build_object_store(out)
    root = store.open_group(str(out), mode="r+")
    ids = sorted(maps)
    for name, value in (("gt", 0.5), ("stale", 0.25)):
        values = np.full((len(ids), 1), value)
        write_evaluation(root, name, ids, [f"{name}_miou"], values, {"miou": value})
    return out


def _nodes(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "evaluations").iterdir() if p.is_dir())


def test_delete_removes_columns_and_result(scored: Path) -> None:
    assert len(_nodes(scored)) == 2
    result = run_cli("evaluate", scored, "--delete", "stale")
    assert result.exit_code == 0, result.output
    assert "deleted evaluation 'stale'" in result.stdout
    view = batchseg.open(str(scored))
    assert list(view.evaluations()) == ["gt"]
    assert "stale_miou" not in view.columns() and "stale_miou" not in view.table()
    assert [n.split("-")[0] for n in _nodes(scored)] == ["gt"]  # its arrays are gone too
    assert (view.table()["gt_miou"] == 0.5).all()  # the other evaluation is untouched


def test_unknown_name_is_one_line_with_a_suggestion(scored: Path) -> None:
    result = run_cli("evaluate", scored, "--delete", "stal")
    assert result.exit_code == 2
    assert "has no evaluation 'stal'; did you mean 'stale'?" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert set(batchseg.open(str(scored)).evaluations()) == {"gt", "stale"}
    assert run_cli("evaluate", scored, "--delete", "gt", "--show").exit_code == 2


def test_delete_waits_for_no_launcher(scored: Path) -> None:
    with store_lock(str(scored)), pytest.raises(StoreError):
        batchseg.delete_evaluation(scored, "stale")
    assert set(batchseg.open(str(scored)).evaluations()) == {"gt", "stale"}
    batchseg.delete_evaluation(scored, "stale")
    with pytest.raises(UsageError, match="evaluations: 'gt'"):
        batchseg.delete_evaluation(scored, "stale")
