"""Issue 18 item 3: query output people can read (unit tests of batchseg.query.display)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batchseg.errors import QueryError, UsageError
from batchseg.query import display as qo
from batchseg.query import parse, parse_columns

CLASSES = [f"fraction_c{i:02d}" for i in range(14)]
AVAILABLE = ["image_id", "status", "error", "height", "width", "n_regions", *CLASSES, "uri"]


def test_default_columns_are_few_and_start_with_the_where_columns():
    cols = qo.default_columns(AVAILABLE, ["width", "fraction_c05"])
    assert cols[:2] == ["width", "fraction_c05"]  # the expression's columns first
    assert "status" in cols and "n_regions" in cols and "image_id" not in cols
    assert "error" not in cols and "uri" not in cols


def test_trim_fractions_keeps_the_three_largest_and_the_where_columns():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"image_id": ["a", "b"], "status": ["done", "done"]})
    for i, c in enumerate(CLASSES):
        table[c] = rng.random(2) * 0.01 + (0.5 if i in (3, 7, 11) else 0.0)
    trimmed = qo.trim_fractions(table, keep=["fraction_c00"])
    fractions = [c for c in trimmed.columns if c.startswith("fraction_")]
    assert fractions == ["fraction_c00", "fraction_c03", "fraction_c07", "fraction_c11"]
    assert len(trimmed.columns) == 6  # never 14 wrapped columns


def test_integers_print_as_integers_in_every_format():
    table = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "n_regions": [264.0, np.nan],
            "pixels_road": [1.0, 2.0],
            "fraction_road": [0.0, 1.0],  # whole by chance: still a fraction
            "seconds": [1.0, 2.0],
        }
    )
    out = qo.with_integers(table)
    assert str(out["n_regions"].dtype) == "Int64" and str(out["pixels_road"].dtype) == "Int64"
    assert out["fraction_road"].dtype == float and out["seconds"].dtype == float
    assert "264.0" not in out.to_csv(index=False) and "264" in out.to_csv(index=False)
    assert '"n_regions":264,' in out.to_json(orient="records")
    assert [qo.cell(v) for v in out.iloc[0]] == ["a", "264", "1", "0", "1"]
    assert qo.cell(out["n_regions"].iloc[1]) == ""


def test_sort_ascending_and_descending():
    assert qo.parse_sort("n_regions", AVAILABLE) == ("n_regions", True)
    assert qo.parse_sort("-n_regions", AVAILABLE) == ("n_regions", False)
    assert qo.parse_sort(None, AVAILABLE) is None
    with pytest.raises(UsageError, match="did you mean 'n_regions'"):
        qo.parse_sort("-n_region", AVAILABLE)


def test_id_globs_are_globs_not_regular_expressions():
    ids = ["photos/a.jpg", "photos/b.png", "other/photos.jpg", "(a+)+b", "x.jpg"]
    assert qo.id_matches(ids, ["photos/*"]) == [True, True, False, False, False]
    assert qo.id_matches(ids, ["*.jpg"]) == [True, False, True, False, True]
    # regex syntax is literal: no injection, no catastrophic backtracking
    assert qo.id_matches(ids, ["(a+)+b"]) == [False, False, False, True, False]
    assert qo.id_matches(["a" * 5000 + "c"], ["*a*a*a*a*a*a*a*b"]) == [False]
    with pytest.raises(UsageError):
        qo.check_patterns(["x" * 1001])


def test_columns_accepts_image_id_and_globs():
    assert parse_columns("image_id,fraction_c0*", AVAILABLE)[:3] == [
        "image_id",
        "fraction_c00",
        "fraction_c01",
    ]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("status = 'done'", "'=='"),
        ("n_regions > 1 && width > 2", "'and'"),
        ("n_regions > 1 || width > 2", "'or'"),
        ("n_regions > 1 AND width > 2", "'and'"),
        ("n_regions > 1 OR width > 2", "'or'"),
        ("n_regions <> 1", "'!='"),
        ("n_regions > 1 & width > 2", "'and'"),
    ],
)
def test_syntax_errors_hint_at_the_fix(text, hint):
    with pytest.raises(QueryError, match=hint) as info:
        parse(text)
    assert "\n" not in str(info.value)


def test_no_hint_from_inside_a_string():
    with pytest.raises(QueryError) as info:
        parse("image_id == 'a=b' and")
    assert "hint" not in str(info.value)
