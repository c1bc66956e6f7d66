"""One ``--address`` (kanplatform/search/address.py): the forms told apart without contact.
That each form reaches a real cluster from ``tune`` and ``submit`` is tested on the cluster of
tests/launch/test_submit.py (one cluster start for both)."""

from __future__ import annotations

import pytest

from kanplatform.search.address import AddressError, parse_address


@pytest.mark.parametrize("text, form, host, port", [
    ("127.0.0.1:6379", "gcs", "127.0.0.1", 6379),
    ("ray://head:10001", "client", "head", 10001),
    ("http://head:8265/", "dashboard", "head", 8265),
    ("https://ray.example.org", "dashboard", "ray.example.org", None),
    ("auto", "auto", None, None),
])
def test_the_three_forms_are_told_apart_without_contact(text, form, host, port):
    addr = parse_address(text)
    assert (addr.form, addr.host, addr.port) == (form, host, port)


@pytest.mark.parametrize("text", ["head", "ftp://head:21", "http://", "head:port", ":6379"])
def test_a_malformed_address_names_the_accepted_forms(text):
    with pytest.raises(AddressError, match=r"not a cluster address; use HOST:PORT .*ray://"
                                           r"HOST:PORT or http://HOST:8265"):
        parse_address(text)
