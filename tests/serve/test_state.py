"""The query example the page shows is made of the store's own columns (issue 27 item 23: a
semantic store was offered ``n_regions``)."""

from __future__ import annotations

import pytest

from batchseg import query as query_lang
from batchseg.serve.state import example_query

SEMANTIC = ["image_id", "status", "height", "width", "fraction_background", "fraction_road"]
REGIONS = ["image_id", "status", "height", "width", "n_regions", "area_mean"]


@pytest.mark.parametrize(
    ("columns", "kind", "named"),
    [
        (SEMANTIC, "classes", "fraction_road"),
        (REGIONS, "regions", "n_regions"),
        (["image_id", "status", "n_objects"], "instances", "n_objects"),
        (["image_id", "status"], "regions", "status"),
    ],
)
def test_example_uses_only_the_stores_columns(columns: list[str], kind: str, named: str) -> None:
    example = example_query(columns, kind)
    expression = query_lang.parse(example)
    expression.check_columns(columns)  # raises on a column the store lacks
    assert named in expression.columns
