"""Token counts and byte sizes: the two parsers, and what ``B`` means in each."""

from __future__ import annotations

import pytest

from gristmill.units import parse_byte_size, parse_token_count


@pytest.mark.parametrize("text,expected", [
    ("100M", 100_000_000), ("2G", 2_000_000_000), ("2B", 2_000_000_000), ("1_500", 1500), ("64k", 64_000),
    ("1.5M", 1_500_000), (" 3 t ", 3 * 10**12), (7, 7)])
def test_token_counts_b_is_a_billion(text, expected):
    assert parse_token_count(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("512B", 512), ("512", 512), ("2GB", 2_000_000_000), ("2g", 2_000_000_000), ("500mb", 500_000_000),
    ("1.5GiB", 1_610_612_736), ("4KiB", 4096), ("1TB", 10**12), (1000, 1000)])
def test_byte_sizes_b_is_a_byte(text, expected):
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "2GB", "1MiB", "-5", "", "1e9", True])
def test_not_a_token_count(text):
    with pytest.raises(ValueError, match="not a token count: .*B is also a billion: a count, not bytes"):
        parse_token_count(text)


@pytest.mark.parametrize("text", ["lots", "2 gigs", "-5", "1.2.3", "", True])
def test_not_a_byte_size(text):
    with pytest.raises(ValueError, match="not a size in bytes: .*B = bytes"):
        parse_byte_size(text)
