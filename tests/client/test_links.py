"""RFC 8288 Link headers, Retry-After, timestamps."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from jobsvc_client._http import format_time, next_link, parse_link_header, parse_time, retry_after_seconds


def test_several_links_with_quoted_parameters():
    header = ('<https://api.example.com/v1/jobs?after=a,b&limit=2>; rel="next"; title="page, two; of many", '
              '<https://api.example.com/v1/jobs?page=1>; rel=prev; hreflang=en , </v1/jobs?x=";">; REL="Last"')
    assert parse_link_header(header) == [
        ("https://api.example.com/v1/jobs?after=a,b&limit=2", {"rel": "next", "title": "page, two; of many"}),
        ("https://api.example.com/v1/jobs?page=1", {"rel": "prev", "hreflang": "en"}),
        ('/v1/jobs?x=";"', {"rel": "Last"}),
    ]


@pytest.mark.parametrize("header, expected", [
    ('<https://a/next>; rel="next"', "https://a/next"),
    ('<https://a/p>; rel="prev", <https://a/n>; rel="next"', "https://a/n"),
    ('<https://a/n>; rel="last next"', "https://a/n"),  # a rel list
    ('<https://a/n>; REL=NEXT', "https://a/n"),
    ('<https://a/t>; title="rel=\\"next\\", x"; rel="prev"', None),  # "next" only inside a quoted title
    ('<https://a/n>; rel="next"; rel="prev"', "https://a/n"),  # the first rel counts
    ('<https://a/n>; title="a \\"quoted\\" title, with a comma"; rel="next"', "https://a/n"),  # escaped quotes
    ('<https://a/p>; rel="prev"', None),
    ('garbage, <https://a/n>; rel="next"', "https://a/n"),
    ("", None),
    (None, None),
])
def test_next_link(header, expected):
    assert next_link(header) == expected


def test_escaped_quotes_in_parameters():
    assert parse_link_header('<https://a/n>; title="say \\"hi\\", then go"; rel=next') == [
        ("https://a/n", {"title": 'say "hi", then go', "rel": "next"}),
    ]


def test_retry_after():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert retry_after_seconds("-5") == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_times():
    aware = datetime(2026, 11, 28, 17, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(aware) == "2026-11-28T15:04:05.123456Z"
    assert format_time("2026-11-28T15:04:05Z") == "2026-11-28T15:04:05Z"
    with pytest.raises(TypeError):
        format_time(12)  # type: ignore[arg-type]
    assert parse_time("2026-11-28T15:04:05.1234Z") == datetime(2026, 11, 28, 15, 4, 5, 123400, tzinfo=timezone.utc)
    assert parse_time(None) is None
