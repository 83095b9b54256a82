"""How `tokenizer show` (and the inspectors, through escape_control) print one token."""

from __future__ import annotations

import pytest

from gristmill.tokenize.show import Piece, escape_control, render_brackets


@pytest.mark.parametrize(("data", "shown"), [
    ("之".encode(), "之"),                      # a whole character
    ("之".encode()[:2], "\\xe4\\xb9"),          # a piece of one: its bytes
    (b"\x1b[31m", "\\x1b[31m"),                 # a terminal escape, not a colour change
    ("a\u2028b".encode(), "a\\u2028b"),         # a line separator would split the row
    (b" \n\t", " ↵→"),
])
def test_piece_visible(data, shown):
    assert Piece(0, data).visible == shown


def test_brackets_keep_one_row_per_line():
    pieces = [Piece(0, "子".encode()), Piece(1, b"\x0b"), Piece(2, b"\x1c"), Piece(3, "曰".encode())]
    assert render_brackets(pieces).splitlines() == ["[子][\\x0b][\\x1c][曰]"]
    assert escape_control("\x85") == "\\x85" and escape_control("中") == "中"
