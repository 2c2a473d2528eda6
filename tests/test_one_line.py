"""``batchseg.errors.one_line``: the one helper turning an exception into the recorded line."""

from __future__ import annotations

from batchseg.errors import ImageError, UsageError, one_line


def test_batchseg_errors_are_their_own_message() -> None:
    assert one_line(ImageError("truncated PNG file")) == "truncated PNG file"
    assert one_line(UsageError("bad\n  value")) == "bad value"


def test_other_errors_name_their_type_on_one_line() -> None:
    assert one_line(ValueError("a\nb\tc")) == "ValueError: a b c"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("")) == "RuntimeError"
    assert one_line(ImageError("")) == "ImageError"


def test_long_messages_are_cut() -> None:
    text = one_line(ImageError("x" * 1000))
    assert len(text) == 500 and text.endswith("...")
    assert len(one_line(ValueError("y" * 100), limit=40)) == 40
