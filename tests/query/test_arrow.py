"""batchseg.query_arrow: the query language as a pyarrow filter selects what pandas selects.

Random tables (nulls, NaN, infinities, zeros, strings, booleans) and random expressions over
the whole grammar: wherever :func:`batchseg.query.filter_table` answers on ``table.to_pandas()``,
:func:`batchseg.query_arrow.filter_arrow` returns the same rows; refusals stay refusals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from batchseg.errors import QueryError
from batchseg.query import filter_table, parse
from batchseg.query_arrow import filter_arrow, to_arrow

N_ROWS = 80
N_RANDOM = 450


def make_table(seed: int, n: int = N_ROWS) -> pa.Table:
    """Columns of every kind a query meets, with missing values where they may be."""
    rng = np.random.default_rng(seed)

    def holes(values: list, p: float = 0.15) -> list:
        return [None if rng.random() < p else v for v in values]

    f = rng.choice([-2.5, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5, 2.0, 7.0], n).astype(float)
    f[rng.random(n) < 0.1] = np.nan
    f[rng.random(n) < 0.03] = np.inf
    f[rng.random(n) < 0.03] = -np.inf
    words = ["a", "b", "ab", "", "Z", "é"]
    return pa.table(
        {
            "row": np.arange(n),
            "i": pa.array(holes(rng.integers(-5, 6, n).tolist()), pa.int64()),
            "j": rng.integers(-4, 5, n),
            "f": pa.array(holes(f.tolist(), 0.1), pa.float64()),
            "g": np.round(rng.uniform(-3, 3, n), 2),
            "s": pa.array(holes(rng.choice(words, n).tolist()), pa.string()),
            "t": rng.choice(words, n),
            "b": rng.random(n) < 0.5,
        }
    )


class Gen:
    """Random expressions over the grammar (numbers, strings, booleans, lists)."""

    NUMS = ("i", "j", "f", "g")
    OPS = ("+", "-", "*", "/", "//", "%", "**")

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def pick(self, items: tuple | list) -> str:
        return str(items[int(self.rng.integers(len(items)))])

    def number(self) -> str:
        return self.pick(["0", "1", "2", "-1", "3", "0.5", "1.5", "-2.5", "True", "1e3", "7"])

    def num(self, depth: int) -> str:
        r = self.rng.random()
        if depth <= 0 or r < 0.35:
            return self.pick(self.NUMS) if self.rng.random() < 0.7 else self.number()
        if r < 0.45:
            return f"-{self.num(depth - 1)}"
        if r < 0.5:
            return "b"
        op = self.pick(self.OPS)
        if op == "**":  # keep powers small: a column or a small exponent
            return f"({self.num(depth - 1)} ** {self.pick(['2', '0', '1', '0.5', 'j', '3'])})"
        return f"({self.num(depth - 1)} {op} {self.num(depth - 1)})"

    def string(self) -> str:
        if self.rng.random() < 0.6:
            return self.pick(["s", "t"])
        return repr(self.pick(["a", "b", "ab", "", "é", "zz"]))

    def items(self) -> str:
        pool = ["1", "0", "-1", "2.0", "0.5", "True", "'a'", "'ab'", "''", "7", "-2.5", "1e3"]
        k = int(self.rng.integers(0, 4))
        chosen = [self.pick(pool) for _ in range(k)]
        return "(" + ", ".join(chosen) + ("," if k == 1 else "") + ")"

    def compare(self, depth: int) -> str:
        r = self.rng.random()
        cmp = self.pick(["<", "<=", ">", ">=", "==", "!="])
        if r < 0.45:
            left, right = self.num(depth), self.num(depth)
            if self.rng.random() < 0.2:  # chained
                return f"{left} {cmp} {right} {self.pick(['<', '<=', '=='])} {self.num(depth)}"
            return f"{left} {cmp} {right}"
        if r < 0.65:
            return f"{self.string()} {cmp} {self.string()}"
        if r < 0.75:  # a string and a number: == and != answer, the rest is refused
            return f"{self.string()} {self.pick(['==', '!=', '<'])} {self.num(0)}"
        word = self.pick(["in", "not in"])
        left = self.string() if self.rng.random() < 0.4 else self.num(depth)
        return f"{left} {word} {self.items()}"

    def boolean(self, depth: int) -> str:
        r = self.rng.random()
        if depth <= 0 or r < 0.45:
            return self.compare(max(depth - 1, 0))
        if r < 0.6:
            return f"not ({self.boolean(depth - 1)})"
        if r < 0.65:
            return self.pick(["b", "True", "False", "not b"])
        if r < 0.7:  # a comparison used as a number
            return f"({self.compare(0)}) + 1 > {self.pick(['1', '0'])}"
        word = self.pick(["and", "or"])
        return f"({self.boolean(depth - 1)}) {word} ({self.boolean(depth - 1)})"


def pandas_rows(table: pa.Table | pd.DataFrame, expr: str) -> list[int] | QueryError:
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    try:
        return [int(r) for r in filter_table(frame, expr)["row"]]
    except QueryError as exc:
        return exc


def arrow_rows(table: pa.Table, expr: str) -> list[int] | QueryError:
    try:
        return filter_arrow(table, expr)["row"].to_pylist()
    except QueryError as exc:
        return exc


HANDWRITTEN = [
    "i != 1",
    "f != 1",
    "f != f",
    "f == f",
    "not (f > 0)",
    "not (s == 'a')",
    "s != 'a'",
    "s < 'b'",
    "s == t",
    "s != t",
    "i not in (1, 2)",
    "f not in (1.5, -2.5)",
    "s not in ('a', 1)",
    "s in ()",
    "i in (True, 'a', 2.0)",
    "f in (1, 0.3)",
    "b in (1,)",
    "b == 1",
    "b != True",
    "-b < 0",
    "j // 0 > 0",
    "j // 0 < 0",
    "j // j == 1",
    "i // j > 0",
    "i % j == 0",
    "j % 0 == 0",
    "f // 0.3 == 3",
    "f % 0.3 < 0.1",
    "f // -0.7 > 1",
    "g % -1.5 < -0.5",
    "(i / j) > 0.5",
    "j / 0 > 0",
    "f ** 2 >= 4",
    "j ** 2 == 4",
    "(f > 1) == (g > 1)",
    "(f > 1) + (g > 1) == 1",
    "-1 < g < 1",
    "0 < i < j <= 4",
    "i == 1 or i != 1",
    "not (i == 1 or i != 1)",
    "1 < 2",
    "1 > 2",
    "True",
    "b",
    "not b",
    "b and f > 0",
    "i > 10 ** 30",
    "i < -(10 ** 30)",
    "1 in (1, 2) and i > 0",
    "s == 1",
    "s != 1",
    "t != 1.5",
    "f == 'a'",
    "f != 'a'",
    "b == 'a'",
    "g > 1e308 * 10",
]


def split_rows(table: pa.Table, expr: str) -> list[int] | QueryError:
    """pandas on the rows where ``i`` is present (then an int64 column), and on the others.

    pandas reads an integer column with nulls as float64, so on those data a zero it computes
    may carry a sign (``-i`` is ``-0.0`` where ``i`` is 0, and ``1 / -i`` is ``-inf``); Arrow
    keeps integers. On the rows where ``i`` is present both compute on integers.
    """
    present = table.filter(pc.is_valid(table["i"]))
    missing = table.filter(pc.is_null(table["i"]))
    parts = [pandas_rows(present, expr), pandas_rows(missing, expr)]
    for part in parts:
        if isinstance(part, QueryError):
            return part
    return sorted(r for part in parts for r in part)  # type: ignore[union-attr]


def _check(table: pa.Table, frame: pd.DataFrame, expr: str, lenient: list[str]) -> bool:
    """Whether pandas answers ``expr``; then Arrow answers the same."""
    want, got = pandas_rows(frame, expr), arrow_rows(table, expr)
    if isinstance(want, QueryError):
        if not isinstance(got, QueryError):
            lenient.append(expr)  # pandas refuses, Arrow computes (documented)
        return False
    assert not isinstance(got, QueryError), f"{expr}: Arrow refused: {got}"
    if got != want:  # only a signed zero of a nullable integer column may differ
        assert got == split_rows(table, expr), f"{expr}: arrow {got} != pandas {want}"
    return True


def test_handwritten_expressions_select_the_same_rows():
    table = make_table(1)
    lenient: list[str] = []
    frame = table.to_pandas()
    for expr in HANDWRITTEN:
        _check(table, frame, expr, lenient)
    assert lenient == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_expressions_select_the_same_rows(seed):
    table = make_table(seed)
    frame, gen = table.to_pandas(), Gen(seed)
    lenient: list[str] = []
    answered = sum(_check(table, frame, gen.boolean(3), lenient) for _ in range(N_RANDOM // 3))
    assert answered > 0.6 * (N_RANDOM // 3)  # most expressions are valid
    # Arrow is only more lenient where pandas refuses integers to negative integer powers
    assert all("**" in expr for expr in lenient), lenient


def test_negative_integer_powers_compute_in_float():
    table = make_table(0)
    assert isinstance(pandas_rows(table, "j ** -1 > 0"), QueryError)
    assert arrow_rows(table, "j ** -1 > 0") == pandas_rows(table, "j >= 0")  # 0 ** -1: inf


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("__import__('os').system('x')", "function calls"),
        ("f.real > 0", "attribute access"),
        ("s[0] == 'a'", "indexing"),
        ("x > 1", "unknown column 'x'"),
        ("fx > 1", "did you mean 'f'"),
        ("f", "query must be a boolean expression; column 'f' has type double"),
        ("f and b", "query must be a boolean expression"),
        ("s + 1 > 0", "arithmetic needs numbers; column 's' has type string"),
        ("-s < 0", "arithmetic needs numbers"),
        ("s < 1", "strings compare only with strings"),
        ("i >= 'a'", "strings compare only with strings"),
        ("1 < 'a'", "cannot evaluate"),
        ("1 // 0 > i", "division by zero"),
        ("i + 10 ** 30 > 0", "numeric overflow"),
        ("i in {1, 2}", "set literals"),
        ("i is 1", "'is' is not allowed"),
        ("i = 1", "compare with '=='"),
        ("", "empty"),
    ],
)
def test_refusals_are_query_errors(expr, needle):
    with pytest.raises(QueryError, match=None) as info:
        to_arrow(expr, make_table(0).schema)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_pandas_refuses_the_same_type_errors():
    df = make_table(0).to_pandas()
    for expr in ("s < 1", "i >= 'a'", "s + 1 > 0", "f"):
        with pytest.raises(QueryError):
            filter_table(df, expr)


def test_parsed_expressions_and_constant_queries():
    schema = make_table(0).schema
    parsed = parse("f > 1 and s == 'a'")
    assert str(to_arrow(parsed, schema)) == str(to_arrow("f > 1 and s == 'a'", schema))
    assert to_arrow("1 < 2", schema).equals(pc.scalar(True))
    assert to_arrow("False or 2 > 3", schema).equals(pc.scalar(False))


def test_dictionary_strings_and_dataset_pushdown():
    table = make_table(3)
    coded = table.set_column(
        table.schema.get_field_index("s"), "s", pc.dictionary_encode(table["s"])
    )
    expr = "s in ('a', 'ab') and f > 0"
    want = pandas_rows(table, expr)
    assert filter_arrow(coded, expr)["row"].to_pylist() == want
    scanned = ds.dataset(table).to_table(filter=to_arrow(expr, table.schema), columns=["row"])
    assert scanned["row"].to_pylist() == want
