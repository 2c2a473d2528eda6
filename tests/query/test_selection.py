"""batchseg.query.selection: the one Selection (where, columns, sort, ids, limit) that
``batchseg query``, ``mask --where``, ``StoreView.query``, the report and the web app share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from batchseg.errors import QueryError, UsageError
from batchseg.query import EVERY_ROW, Selection, filter_table, select

FRACTIONS = [f"fraction_c{i}" for i in range(6)]


class FrameSource:
    """A table read by columns, as StoreView reads one (records what was read)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.read: list[str] | None = None

    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def table(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        self.read = None if columns is None else list(columns)
        wanted = ["image_id", "status", *(c for c in columns or [] if c != "status")]
        return self.frame[wanted if columns is not None else list(self.frame.columns)]


@pytest.fixture
def source() -> FrameSource:
    rng = np.random.default_rng(3)
    n = 12
    frame = pd.DataFrame(
        {
            "image_id": [f"{'a' if k % 2 else 'b'}/img_{k:02d}.png" for k in range(n)],
            "status": pd.Categorical(["done"] * (n - 2) + ["failed", "pending"]),
            "error": [None] * (n - 2) + ["bad", None],
            "height": [64.0] * (n - 1) + [np.nan],
            "width": [48.0] * n,
            "n_regions": [float(k % 5) for k in range(n - 2)] + [np.nan, np.nan],
            "mean_confidence": rng.random(n),
            "uri": [f"file:///x/{k}" for k in range(n)],
        }
    )
    for i, c in enumerate(FRACTIONS):
        frame[c] = rng.random(n) * 0.1 + (0.5 if i in (1, 4) else 0.0)
    return FrameSource(frame)


def test_default_columns_are_the_key_ones_and_only_those_are_read(source):
    page = select(source, Selection("n_regions > 2"))
    columns = list(page.rows.columns)
    assert columns[:4] == ["image_id", "n_regions", "status", "mean_confidence"]
    fractions = [c for c in page.rows.columns if c.startswith("fraction_")]
    assert len(fractions) == 3 and {"fraction_c1", "fraction_c4"} <= set(fractions)
    assert len(columns) == 7  # the three largest fractions, in table order
    assert "uri" not in source.read and "error" not in source.read
    want = source.frame[source.frame["n_regions"] > 2]["image_id"].tolist()
    assert page.rows["image_id"].tolist() == want and page.total == len(want)


def test_counts_print_as_integers_decided_on_every_matching_row(source):
    page = select(source, Selection("status == 'done'", "n_regions,height"))
    assert str(page.rows["n_regions"].dtype) == "Int64"
    assert str(page.rows["height"].dtype) == "Int64"
    raw = select(source, Selection("status == 'done'", "n_regions"), integers=False)
    assert raw.rows["n_regions"].dtype == float


def test_sort_ids_limit_offset_and_total(source):
    chosen = Selection(None, "n_regions", sort="-n_regions", ids=["a/*"], limit=2, offset=1)
    page = select(source, chosen)
    frame = source.frame
    matching = frame[frame["image_id"].str.startswith("a/") & frame["height"].notna()]
    ordered = matching.sort_values("n_regions", ascending=False, kind="stable", na_position="last")
    assert page.total == len(matching)  # no --where: height >= 0 (the last has no height)
    assert page.rows["image_id"].tolist() == ordered["image_id"].tolist()[1:3]
    assert list(page.rows.columns) == ["image_id", "n_regions"]
    assert page.records()[0]["image_id"] == ordered["image_id"].iloc[1]


def test_every_row_is_the_documented_expression(source):
    everything = select(source, Selection(columns="*"))
    assert everything.total == len(filter_table(source.frame, EVERY_ROW))
    assert select(source, Selection("", "")).total == everything.total
    assert list(everything.rows.columns) == source.columns()


def test_missing_values_never_match_and_sort_last(source):
    page = select(source, Selection("n_regions != 1", "n_regions", sort="n_regions"))
    assert page.rows["n_regions"].notna().all()
    page = select(source, Selection("width > 0", "n_regions", sort="-n_regions"))
    assert page.rows["n_regions"].isna().tolist()[-3:] == [False, True, True]


@pytest.mark.parametrize(
    ("selection", "error", "needle"),
    [
        (dict(where="n_region > 1"), QueryError, "did you mean 'n_regions'"),
        (dict(where="n_regions = 1"), QueryError, "compare with '=='"),
        (dict(columns="nope"), QueryError, "unknown column 'nope'"),
        (dict(columns=" , "), QueryError, "empty"),
        (dict(sort="-n_region"), UsageError, "--sort: unknown column"),
    ],
)
def test_bad_selections_are_one_line_errors(source, selection, error, needle):
    with pytest.raises(error, match=needle) as info:
        select(source, Selection(**selection))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "needle"),
    [(dict(limit=-1), "limit"), (dict(offset=-1), "offset"), (dict(ids=[""]), "--id")],
)
def test_bad_pages_and_patterns_refused_before_reading(options, needle):
    with pytest.raises(UsageError, match=needle):
        Selection(**options)


def test_empty_and_all_missing_text_columns_answer_false():
    """Arrow reads an empty or all-None object column as type null: it is queried as the text
    column it is (compared with text it matches nothing, ordered against a number it is
    refused, as on a store whose errors are all present)."""
    empty = pd.DataFrame({"image_id": pd.Series([], dtype=object), "height": []})
    empty["error"] = pd.Series([], dtype=object)
    assert len(filter_table(empty, "error == 'x' or height > 0")) == 0
    blank = pd.DataFrame({"image_id": ["a", "b"], "error": [None, None]})
    assert filter_table(blank, "error != 'x'").index.tolist() == []
    assert filter_table(blank, "not (error == 'x')").index.tolist() == [0, 1]
    with pytest.raises(QueryError, match="strings compare only with strings"):
        filter_table(blank, "error > 1")
