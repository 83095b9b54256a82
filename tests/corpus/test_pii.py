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
