"""PII redaction: what is redacted, what only looks like PII, and the counts per kind."""

from __future__ import annotations

import dataclasses

import pytest

from gristmill.corpus.pii import PIIConfig, redact

CFG = PIIConfig()


def test_emails() -> None:
    text, counts = redact("Write to jane.doe+list@mail.example.co.uk or bob@example.org.", CFG)
    assert text == "Write to <EMAIL> or <EMAIL>." and counts == {"email": 2}


@pytest.mark.parametrize("text", ["user@localhost", "a@b.c", "@example.com", "my @handle here",
                                  "array @items and %hash in Perl"])
def test_not_emails(text: str) -> None:
    assert redact(text, CFG) == (text, {})


def test_public_ipv4_redacted_private_kept() -> None:
    text, counts = redact("DNS 8.8.8.8, router 192.168.1.1, local 127.0.0.1, docs 203.0.113.5", CFG)
    assert text == "DNS <IP_ADDRESS>, router 192.168.1.1, local 127.0.0.1, docs 203.0.113.5"
    assert counts == {"ip": 1}
    all_ips = dataclasses.replace(CFG, redact_private_ips=True)
    assert redact("router 192.168.1.1", all_ips) == ("router <IP_ADDRESS>", {"ip": 1})


def test_ipv6() -> None:
    text, counts = redact("v6 at 2001:4860:4860::8888 and loopback ::1", CFG)
    assert text == "v6 at <IP_ADDRESS> and loopback ::1" and counts == {"ip": 1}


@pytest.mark.parametrize("text", [
    "use std::vector and Foo::Bar::baz",  # C++/Rust paths
    "at 12:30:45 the job ran",  # times
    "dead::beef is not an address here",  # no digit
    "999.1.1.1 is not valid",  # octet out of range
    "sections 1.2.3.4.5 of the spec",  # longer dotted run
])
def test_things_that_look_like_ips(text: str) -> None:
    assert redact(text, CFG) == (text, {})


def test_version_numbers_documented_choice() -> None:
    # A bare dotted quad is an IP by form, even in a sentence about versions ...
    assert redact("we upgraded to 1.2.3.4 last week", CFG)[1] == {"ip": 1}
    # ... unless the text marks it as a version.
    for text in ("version 1.2.3.4 is out", "kernel 4.19.0.21 boots", "release: 2.0.1.3", "v1.2.3.4"):
        assert redact(text, CFG) == (text, {}), text


def test_phone_numbers() -> None:
    text, counts = redact("Call +44 20 7946 0958, (555) 123-4567 or 555.123.4567 today.", CFG)
    assert text == "Call <PHONE>, <PHONE> or <PHONE> today." and counts == {"phone": 3}


@pytest.mark.parametrize("text", ["on 2021-03-04 at noon", "order 12345678", "pi is 3.14159",
                                  "ISBN 978-3-16-148410-0", "x+1 = 2"])
def test_not_phone_numbers(text: str) -> None:
    assert redact(text, CFG) == (text, {})


def test_kinds_can_be_disabled_and_placeholders_changed() -> None:
    text = "mail a.b@example.com from 8.8.8.8"
    assert redact(text, dataclasses.replace(CFG, enabled=False)) == (text, {})
    assert redact(text, dataclasses.replace(CFG, email=False))[0] == "mail a.b@example.com from <IP_ADDRESS>"
    assert redact(text, dataclasses.replace(CFG, email_placeholder="[mail]"))[0] == "mail [mail] from <IP_ADDRESS>"


# ---------------------------------------------------------------- one pass == the old three passes

from collections import Counter  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from gristmill.corpus import pii  # noqa: E402


def _sequential(text: str, cfg: PIIConfig) -> tuple[str, Counter[str]]:
    """The redaction as it was before the one-pass pre-scan: e-mail, IPs, phones, in turn."""
    counts: Counter[str] = Counter()
    if cfg.email and "@" in text:
        text, counts["email"] = pii._redact_emails(text, cfg.email_placeholder)
    if cfg.ip:
        text = pii._redact_ips(text, cfg, counts)
    if cfg.phone:
        text = pii.PHONE_RE.sub(lambda m: pii._phone(m, text, cfg, counts), text)
    return text, +counts


CASES = [
    "no digits here", "call +44 20 7946 0958 now", "(555) 123-4567", "555-123-4567 and 555.123.4567",
    "555-123.4567", "host 8.8.8.8, also 10.0.0.1", "v1.2.3.4 and version 1.2.3.4 and 1.2.3.4.5",
    "2001:4860:4860::8888 and ::1 and std::vector", "mail a.b@example.org or 8.8.4.4+1 555 123 4567",
    "2021-03-04 12:30:45", "1.2.3.4555-123-4567", "+1 (555) 123-4567x", "fe80::1%eth0 1::2:3:4:5:6:7",
    "a@b.co 8.8.8.8:80 [2606:4700::1111]:443", "tel:+33 1 23 45 67 89.", "",
    "dead:beef::1 only", "2606:4700:4700:1111:2222:3333:4444:5555 alone", "a:b:c:d:e:f:0:1",
]


@pytest.mark.parametrize("text", CASES)
@pytest.mark.parametrize("private", [False, True])
def test_one_pass_equals_sequential_on_table(text: str, private: bool) -> None:
    cfg = PIIConfig(redact_private_ips=private)
    assert redact(text, cfg) == _sequential(text, cfg)


_ALPHABET = "0123456789.:-+() @abfex\n"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=60), st.booleans(), st.booleans())
def test_one_pass_equals_sequential_generated(text: str, ip: bool, phone: bool) -> None:
    cfg = PIIConfig(ip=ip, phone=phone)
    assert redact(text, cfg) == _sequential(text, cfg)


# Pieces of addresses and phone numbers glued in any order: runs of digits and separators
# just under and over 7 characters, "+" and "(" before them, version words, letters after.
_PIECES = st.sampled_from(["1", "12", "123", "1234", "8.8", ".8", "8.8.8.8", "10.0.0.1", "555", "4567", "+", "+44",
                           "(", ")", "(555)", " ", "-", ".", ":", "::", "v", "version ", "a", "x", "٣", "²",
                           "2001:db8::1", "fe80::", "\n", "\t", "_"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=14).map("".join), st.booleans(), st.booleans(), st.booleans())
def test_digit_run_pre_scan_changes_nothing(text: str, ip: bool, phone: bool, private: bool) -> None:
    cfg = PIIConfig(ip=ip, phone=phone, redact_private_ips=private)
    assert redact(text, cfg) == _sequential(text, cfg)


def test_pre_scan_skips_candidate_free_text() -> None:
    assert pii.ANY_CANDIDATE_RE.search("version 3.11 of the docs, 42 pages, 2021-03-04") is None
    assert pii.ANY_CANDIDATE_RE.search("ring 555.123.4567") is not None
    # Too few digits for a phone, too short for an address: no digit run, no regex pass.
    for text in ("+1 234", "pi 3.1416", "(55) 12", "1.2.3"):
        assert pii.DIGIT_RUN_RE.search(text) is None
    assert pii.DIGIT_RUN_RE.search("+44 20 7946 0958").group(0) == "44 20 7946 0958"
