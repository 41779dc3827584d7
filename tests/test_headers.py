"""Headers from decisions: each style, Retry-After on refusals, the IETF draft's syntax."""

from __future__ import annotations

import re

import pytest

from rust_py_rate_limit import Decision, ManualClock, RateLimiter
from rust_py_rate_limit.headers import HeaderWriter, rate_limit_headers, retry_after_seconds

ADMITTED = Decision(True, 10, 7, 42.2, 0.0)
REFUSED = Decision(False, 10, 0, 42.2, 3.01)


def test_x_ratelimit_is_the_default() -> None:
    assert rate_limit_headers(ADMITTED) == [
        ("X-RateLimit-Limit", "10"),
        ("X-RateLimit-Remaining", "7"),
        ("X-RateLimit-Reset", "43"),
    ]


def test_a_refusal_adds_retry_after_in_whole_seconds_rounded_up() -> None:
    assert dict(rate_limit_headers(REFUSED))["Retry-After"] == "4"


def test_ietf_fields_name_the_policy_and_its_window() -> None:
    headers = rate_limit_headers(ADMITTED, "ietf", rates=[(10, 60)], name="api")
    assert headers == [
        ("RateLimit-Policy", '"api";q=10;w=60'),
        ("RateLimit", '"api";r=7;t=43'),
    ]


def test_ietf_fields_follow_the_draft_syntax() -> None:
    # An sf-string name, then integer parameters: RateLimit-Policy needs q, RateLimit needs r.
    item = r'"(?:[^"\\]|\\.)*"(?:;[a-z]+=\d+)+'
    headers = dict(rate_limit_headers(REFUSED, "ietf", rates=[(10, 60)], name='a "b" \\ c'))
    assert re.fullmatch(item, headers["RateLimit-Policy"])
    assert re.fullmatch(item, headers["RateLimit"])
    assert headers["RateLimit-Policy"].startswith(r'"a \"b\" \\ c";q=10;w=60')


def test_with_several_rates_the_policy_is_the_one_that_decided() -> None:
    writer = HeaderWriter("ietf", rates=[(1000, 3600), (10, 1)])
    hourly = Decision(True, 1000, 5, 100.0, 0.0)
    secondly = Decision(True, 10, 5, 0.5, 0.0)
    assert dict(writer.headers(hourly))["RateLimit-Policy"] == '"default";q=1000;w=3600'
    assert dict(writer.headers(secondly))["RateLimit-Policy"] == '"default";q=10;w=1'


def test_both_styles_together_and_none() -> None:
    names = [name for name, _ in rate_limit_headers(REFUSED, "both", rates=[(10, 60)])]
    assert names == [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "RateLimit-Policy",
        "RateLimit",
        "Retry-After",
    ]
    assert rate_limit_headers(ADMITTED, None) == []
    assert rate_limit_headers(REFUSED, None) == [("Retry-After", "4")]


def test_retry_after_is_at_least_one_second() -> None:
    assert retry_after_seconds(Decision(False, 10, 0, 0.001, 0.0001)) == 1


def test_a_request_that_can_never_pass_waits_for_a_full_reset() -> None:
    limiter = RateLimiter(5, 60, clock=ManualClock())
    decision = limiter.decide("k", 6)
    assert decision.retry_after == float("inf")
    assert dict(rate_limit_headers(decision, rates=limiter.rates))["Retry-After"] == "60"
    assert dict(rate_limit_headers(decision))["Retry-After"] == "1"  # no window known


def test_headers_follow_a_real_limiter() -> None:
    clock = ManualClock()
    limiter = RateLimiter(2, 10, clock=clock)
    writer = HeaderWriter(rates=limiter.rates)
    assert dict(writer.headers(limiter.decide("k")))["X-RateLimit-Remaining"] == "1"
    clock.advance(4)
    assert dict(writer.headers(limiter.decide("k")))["X-RateLimit-Reset"] == "6"
    refused = dict(writer.headers(limiter.decide("k")))
    assert refused["X-RateLimit-Remaining"] == "0"
    assert refused["Retry-After"] == "6"


@pytest.mark.parametrize("style", ["X-RateLimit", "draft", "", 1, True])
def test_an_unknown_style_is_a_value_error_naming_it(style: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(style))):
        HeaderWriter(style)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "caf\u00e9", "a\nb"])
def test_a_policy_name_must_be_printable_ascii(name: str) -> None:
    with pytest.raises(ValueError, match="policy name"):
        HeaderWriter("ietf", name=name)


def test_a_policy_name_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="int"):
        HeaderWriter("ietf", name=3)  # type: ignore[arg-type]
