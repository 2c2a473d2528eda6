"""The file lists behind ``make test``'s order and grouping name real files, and every test
file that imports torch is in the torch group."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.suite_order import SLOW_FILES, TORCH_FILES

ROOT = Path(__file__).resolve().parents[1]
TORCH_IMPORT = re.compile(r"^\s*(import torch|from torch|.*importorskip\(\"torch)", re.M)


def test_listed_files_exist_once() -> None:
    for name in SLOW_FILES + TORCH_FILES:
        assert (ROOT / name).is_file(), name
    assert len(set(SLOW_FILES)) == len(SLOW_FILES)
    assert set(TORCH_FILES) <= set(SLOW_FILES)


def test_every_torch_test_file_is_in_the_torch_group() -> None:
    found = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "benchmarks" not in path.parts and TORCH_IMPORT.search(path.read_text())
    }
    # test_bad_inputs only loads a hostile checkpoint in this process; no model runs anywhere
    assert found - set(TORCH_FILES) <= {"tests/job/test_bad_inputs.py"}, found - set(TORCH_FILES)
