"""The query language (batchseg.query): semantics on pandas tables, refusals and speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from batchseg.errors import QueryError, UsageError
from batchseg.query import MAX_LENGTH, Expression, filter_table, mask, parse, parse_columns


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": ["img_001", "img_002", "img_003", "img_004", "img_005"],
            "status": ["done", "failed", "done", None, "skipped"],
            "fraction_road": [0.05, 0.2, 0.45, np.nan, 0.7],
            "fraction_sky": [0.5, 0.1, 0.0, 0.3, 0.2],
            "n_regions": [1, 5, 8, 3, 12],
            "has_gt": [True, False, True, False, True],
        },
        index=[10, 20, 30, 40, 50],
    )


def rows(table: pd.DataFrame, expr: str) -> list[int]:
    return filter_table(table, expr).index.tolist()


# --------------------------------------------------------------------- semantics


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("n_regions > 4", [20, 30, 50]),
        ("n_regions >= 5", [20, 30, 50]),
        ("n_regions < 5", [10, 40]),
        ("n_regions <= 3", [10, 40]),
        ("n_regions == 8", [30]),
        ("n_regions != 8", [10, 20, 40, 50]),
        ("4 < n_regions", [20, 30, 50]),
        ("fraction_road > fraction_sky", [20, 30, 50]),
        ("fraction_road > 0.1e0", [20, 30, 50]),
    ],
)
def test_comparisons(table, expr, expected):
    assert rows(table, expr) == expected


def test_chained_comparison(table):
    assert rows(table, "0.1 < fraction_road < 0.5") == [20, 30]
    assert rows(table, "1 <= n_regions <= 5 < 100") == [10, 20, 40]


def test_and_or_not_precedence(table):
    # 'and' binds tighter than 'or'; 'not' tighter than both.
    assert rows(table, "n_regions > 10 or n_regions < 5 and has_gt") == [10, 50]
    assert rows(table, "(n_regions > 10 or n_regions < 5) and has_gt") == [10, 50]
    assert rows(table, "(n_regions > 4 or n_regions < 2) and not has_gt") == [20]
    assert rows(table, "not n_regions > 4 and has_gt") == [10]
    assert rows(table, "not (n_regions > 4 and has_gt)") == [10, 20, 40]
    assert rows(table, "has_gt") == [10, 30, 50]
    assert rows(table, "not not has_gt") == [10, 30, 50]


def test_arithmetic_and_parentheses(table):
    assert rows(table, "n_regions * 2 + 1 > 11") == [30, 50]
    assert rows(table, "n_regions * (2 + 1) > 11") == [20, 30, 50]
    assert rows(table, "n_regions // 4 == 2") == [30]
    assert rows(table, "n_regions % 2 == 0") == [30, 50]
    assert rows(table, "n_regions ** 2 > 60") == [30, 50]
    assert rows(table, "n_regions / 4 >= 2") == [30, 50]
    assert rows(table, "-n_regions < -7") == [30, 50]
    assert rows(table, "+n_regions - 1 == 0") == [10]
    assert rows(table, "fraction_road + fraction_sky >= 0.45") == [10, 30, 50]
    assert rows(table, "2 ** 3 == n_regions") == [30]


def test_in_lists(table):
    assert rows(table, 'status in ("failed", "done")') == [10, 20, 30]
    assert rows(table, "status in ['skipped']") == [50]
    assert rows(table, "n_regions in (1, 3, -4)") == [10, 40]
    assert rows(table, "n_regions not in (1, 3)") == [20, 30, 50]
    assert rows(table, "n_regions in ()") == []
    assert rows(table, "n_regions + 1 in (2, 4)") == [10, 40]


def test_strings(table):
    assert rows(table, "status == 'done'") == [10, 30]
    assert rows(table, "image_id == 'img_004'") == [40]
    assert rows(table, "'img_002' == image_id") == [20]
    assert rows(table, "status != 'done'") == [20, 50]  # missing status: never matches
    assert rows(table, "image_id >= 'img_004'") == [40, 50]


def test_missing_values_never_match(table):
    assert 40 not in rows(table, "fraction_road > 0")
    assert 40 not in rows(table, "fraction_road <= 1")
    assert 40 not in rows(table, "fraction_road != 0.2")
    assert 40 not in rows(table, "fraction_road not in (0.2,)")
    assert 40 not in rows(table, "status not in ('done',)")
    assert 40 in rows(table, "not fraction_road > 0")


def test_nullable_dtypes():
    t = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "cat": pd.Categorical(["a", "b", None]),
        }
    )
    assert filter_table(t, "n != 2").index.tolist() == [0, 2]
    assert filter_table(t, "flag").index.tolist() == [0]
    assert filter_table(t, "cat == 'b' or n > 2").index.tolist() == [1, 2]


def test_constant_queries(table):
    assert rows(table, "True") == [10, 20, 30, 40, 50]
    assert rows(table, "1 > 2") == []


def test_mask_is_boolean_and_aligned(table):
    chosen = mask(table, parse("n_regions > 4"))
    assert chosen.dtype == bool
    assert len(chosen) == len(table)
    assert chosen.tolist() == [False, True, True, False, True]


def test_filter_keeps_columns_and_empty_table(table):
    out = filter_table(table, "n_regions > 4")
    assert list(out.columns) == list(table.columns)
    empty = table.iloc[:0]
    assert len(filter_table(empty, "n_regions > 4")) == 0


def test_expression_object(table):
    expr = parse("  fraction_road > 0.3 and n_regions > 4 ")
    assert isinstance(expr, Expression)
    assert expr.columns == frozenset({"fraction_road", "n_regions"})
    assert str(expr) == "fraction_road > 0.3 and n_regions > 4"
    assert parse(str(expr)) == expr
    with pytest.raises(AttributeError):
        expr.text = "x"  # type: ignore[misc]
    assert filter_table(table, expr).index.tolist() == [30, 50]


# ------------------------------------------------------------------- refusals

INJECTIONS = [
    "().__class__.__bases__[0].__subclasses__()",
    "fraction_road.__class__",
    "(lambda: 1)()",
    "[x for x in ()]",
    "open('/etc/passwd')",
    'f"{x}"',
    "a := 1",
    "(a := 1)",
    "eval('1')",
    "getattr(a, 'b')",
    "__builtins__",
    "__import__",
    "fraction_road[0] > 1",
    "fraction_road if True else 1",
    "{1: 2}",
    "n_regions in {1, 2}",
    "*n_regions",
    "n_regions > 1; import os",
    "import os",
    "b'x' == status",
    "n_regions > None",
    "1j == n_regions",
    "n_regions is 1",
    "n_regions & 1",
    "n_regions | 1",
    "~has_gt",
    "n_regions << 2 > 1",
    "n_regions in (n_regions,)",
    "n_regions in (len('x'),)",
    "n_regions in status",
    "status * 100000000 == 'x'",
    "'x' * 100000000 == status",
    "lambda: 0",
    "yield 1",
    "await x",
]


@pytest.mark.parametrize("expr", INJECTIONS)
def test_injection_refused(table, expr):
    with pytest.raises(QueryError) as info:
        filter_table(table, expr)
    message = str(info.value)
    assert message and "\n" not in message


def test_import_system_has_no_side_effect(table, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "X"
    for expr in (
        "__import__('os').system('touch X')",
        f"__import__('os').system('touch {target}')",
        "n_regions > 0 and __import__('os').system('touch X') == 0",
    ):
        with pytest.raises(QueryError):
            filter_table(table, expr)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("open('/etc/passwd')", "function calls are not allowed"),
        ("fraction_road.__class__", "attribute access"),
        ("fraction_road[0] > 1", "indexing"),
        ("(lambda: 1)()", "function calls are not allowed"),
        ("lambda: 1", "lambda"),
        ("[x for x in ()]", "comprehensions"),
        ('f"{x}" == status', "f-strings"),
        ("(a := 1)", "assignment expressions"),
        ("__builtins__", "'__'"),
        ("n_regions & 1", "use 'and'"),
    ],
)
def test_refusal_messages(table, expr, fragment):
    with pytest.raises(QueryError, match=fragment):
        parse(expr)


def test_syntax_error(table):
    with pytest.raises(QueryError, match="invalid query syntax"):
        parse("n_regions >")
    with pytest.raises(QueryError, match="invalid query syntax"):
        parse("n_regions > 1 && has_gt")
    with pytest.raises(QueryError, match="empty"):
        parse("   ")
    with pytest.raises(QueryError):
        parse("n_regions > 1\x00")


def test_unknown_column(table):
    with pytest.raises(QueryError) as info:
        filter_table(table, "fraction_rod > 0.3")
    message = str(info.value)
    assert message.startswith("unknown column 'fraction_rod'")
    assert "did you mean 'fraction_road'" in message
    assert "available: image_id, status, fraction_road" in message


def test_unknown_column_lists_at_most_20():
    wide = pd.DataFrame({f"c{i}": [1] for i in range(50)})
    with pytest.raises(QueryError) as info:
        filter_table(wide, "zzz > 1")
    message = str(info.value)
    assert "c19" in message and "c20," not in message and "30 more" in message


@pytest.mark.parametrize(
    "expr",
    ["n_regions", "n_regions + 1", "fraction_road * 2", "'done'", "1", "-n_regions", "status"],
)
def test_non_boolean_refused(table, expr):
    with pytest.raises(QueryError, match="boolean expression"):
        filter_table(table, expr)


def test_non_boolean_operands_refused(table):
    with pytest.raises(QueryError, match="boolean"):
        parse("n_regions > 1 and 3")
    with pytest.raises(QueryError, match="boolean"):
        filter_table(table, "n_regions > 1 or fraction_road")
    with pytest.raises(QueryError, match="boolean"):
        filter_table(table, "not n_regions")


def test_type_errors_become_query_errors(table):
    with pytest.raises(QueryError, match="cannot evaluate"):
        filter_table(table, "status > 3")
    with pytest.raises(QueryError, match="arithmetic"):
        filter_table(table, "status + 1 > 3")
    with pytest.raises(QueryError, match="arithmetic on strings"):
        parse("status + 'x' == 'donex'")
    with pytest.raises(QueryError, match="division by zero"):
        filter_table(table, "1 / 0 > n_regions")


def test_huge_constant_power_is_cheap(table):
    start = time.perf_counter()
    with pytest.raises(QueryError, match="overflow"):
        filter_table(table, "n_regions < 9 ** 9 ** 9")
    assert time.perf_counter() - start < 1.0


def test_length_and_depth_limits(table):
    with pytest.raises(QueryError, match="too long"):
        parse("n_regions > 1 and " * 200 + "has_gt")
    with pytest.raises(QueryError, match="nested too deeply"):
        parse("not " * 150 + "has_gt")
    with pytest.raises(QueryError, match="nested too deeply"):
        parse("n_regions" + " + 1" * 150 + " > 1")
    with pytest.raises(QueryError):
        parse("(" * 300 + "has_gt" + ")" * 300)
    assert len("n_regions > 1") < MAX_LENGTH
    assert rows(table, "not " * 20 + "has_gt") == [10, 30, 50]


def test_query_error_is_usage_error():
    with pytest.raises(UsageError):
        parse("open('x')")
    with pytest.raises(ValueError):
        parse("open('x')")


def test_speed_one_million_rows():
    rng = np.random.default_rng(0)
    n = 1_000_000
    big = pd.DataFrame({"fraction_road": rng.random(n), "n_regions": rng.integers(0, 10, n)})
    expr = parse("fraction_road > 0.3 and n_regions > 4")
    mask(big, expr)  # warm up
    start = time.perf_counter()
    chosen = mask(big, expr)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    expected = (big["fraction_road"].to_numpy() > 0.3) & (big["n_regions"].to_numpy() > 4)
    assert np.array_equal(chosen, expected)


# ---------------------------------------------------------------- parse_columns

AVAILABLE = ["image_id", "status", "fraction_road", "fraction_sky", "n_regions"]


def test_parse_columns_none_is_all():
    assert parse_columns(None, AVAILABLE) == AVAILABLE


def test_parse_columns_comma_list_and_sequence():
    assert parse_columns("n_regions, image_id", AVAILABLE) == ["n_regions", "image_id"]
    assert parse_columns(["status", "n_regions"], AVAILABLE) == ["status", "n_regions"]
    assert parse_columns(["status,n_regions", "image_id"], AVAILABLE) == [
        "status",
        "n_regions",
        "image_id",
    ]


def test_parse_columns_globs_and_dedup():
    assert parse_columns("fraction_*", AVAILABLE) == ["fraction_road", "fraction_sky"]
    assert parse_columns("image_id,fraction_*,fraction_road", AVAILABLE) == [
        "image_id",
        "fraction_road",
        "fraction_sky",
    ]
    assert parse_columns("*_id", AVAILABLE) == ["image_id"]


def test_parse_columns_errors():
    with pytest.raises(QueryError, match="unknown column 'nope'"):
        parse_columns("image_id,nope", AVAILABLE)
    with pytest.raises(QueryError, match="no column matches 'area_\\*'"):
        parse_columns("area_*", AVAILABLE)
    with pytest.raises(QueryError, match="empty"):
        parse_columns(" , ", AVAILABLE)
