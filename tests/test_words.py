"""Numbers people read in the run output (issue 27, item 23)."""

from __future__ import annotations

import pytest

from batchseg.words import rate_text, size_text
from tests.helpers.cli import run_cli


@pytest.mark.parametrize(
    ("n", "want"), [(0, "0 B"), (812, "812 B"), (4_200, "4.2 kB"), (3_100_000, "3.1 MB")]
)
def test_size_text_never_rounds_a_small_size_to_zero(n, want):
    assert size_text(n) == want
    assert size_text(1.2e9) == "1.20 GB"


def test_rate_text_shows_slow_tiled_jobs():
    assert rate_text(1, 42.0) == "42.0 s/image"  # was "0.0 images/s"
    assert rate_text(50, 4.0) == "12.5 images/s"
    assert rate_text(0, 3.0) == "0 images/s"


def test_dry_run_statistics_size_is_not_zero(tmp_path):
    run_cli("demo-data", tmp_path / "demo", "--count", "2")
    out = tmp_path / "o.zarr"
    result = run_cli("run", tmp_path / "demo", "-m", "skimage.otsu", "-o", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "statistics 0.0 MB" not in result.stdout and "statistics " in result.stdout
