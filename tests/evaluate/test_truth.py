"""Issue 27 item 6 for ``--truth-classes``: truth colours are checked as ``--colors`` are
(one parser, :func:`batchseg.render.parse_colour`), with a one-line error naming file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batchseg.errors import UsageError
from batchseg.evaluate.truth import read_value_map

CLASSES = ["sky", "road", "car"]


def _map(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "classes.csv"
    path.write_text("value,class\n" + "".join(f"{r}\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "bad",
    ["#-1-1-1", "#12345", "#1234567", "#gg0000", "-1 0 0", "256 0 0", "0 0 999", "1.5 0 0", "3 x"],
)
def test_bad_truth_values_are_refused_naming_file_and_line(tmp_path: Path, bad: str) -> None:
    path = _map(tmp_path, "#000000,sky", f"{bad},road")
    with pytest.raises(UsageError) as caught:
        read_value_map(str(path), CLASSES)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: value {bad!r}") and "\n" not in message


def test_good_truth_values_map_as_written(tmp_path: Path) -> None:
    path = _map(tmp_path, "#0000FF,sky", "128 64 255,road", "0 0 0,ignore", "7,car", "-1,ignore")
    value_map = read_value_map(str(path), CLASSES)
    assert value_map.colour == {(0, 0, 255): 0, (128, 64, 255): 1, (0, 0, 0): -1}
    assert value_map.grey == {7: 2, -1: -1}  # signed TIFF truth may hold negative values
    truth = np.array([[[0, 0, 255], [128, 64, 255], [0, 0, 0]]], dtype=np.uint8)
    assert value_map.apply(truth).tolist() == [[0, 1, -1]]
