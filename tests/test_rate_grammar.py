"""Rate strings as users of `limits` (slowapi, flask-limiter) and of django-ratelimit write them,
checked against those libraries' own parsers: `limits.parse_many` and django-ratelimit's
`_split_rate` (a private function, but importable without Django settings).

The grammar (docs/reference/index.md; `src/rate.rs`) is `limits`' (several rates joined by `,`,
`;` or `|`; `/` or `per`; an optional multiplier; units singular or plural; any case and
whitespace), plus django-ratelimit's short form as it writes it (`5/m`, `5/10m`: lowercase, no
spaces). It refuses, where `limits` accepts: a count of 0, a multiplier of 0 (`limits` reads it
as 1), a count above 2**32 - 1 and a period above 2**62 ns.
"""

from __future__ import annotations

import re

import limits
import pytest
from django_ratelimit.core import _split_rate
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from rust_py_rate_limit import RateLimiter

MAX_COUNT = 2**32 - 1
MAX_SECONDS = 2**62 // 10**9
UNITS = ("second", "minute", "hour", "day", "month", "year")
SHORT = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
#: Whitespace that Python's `\s` (so `limits`) and Rust's `char::is_whitespace` both know.
WHITESPACE = " \t\n\u00a0\u3000"

Rates = list[tuple[int, int]]


def ours(text: str) -> Rates | None:
    """Our reading of `text` through the public API, or None if refused (always a ValueError
    quoting the whole string)."""
    try:
        return RateLimiter.from_rate(text).rates
    except ValueError as error:
        assert f"invalid rate string {rust_quoted(text)}: " in str(error), str(error)
        return None


def rust_quoted(text: str) -> str:
    """`text` as Rust's `{:?}` quotes it (for the characters these tests generate)."""
    escapes = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}

    def one(c: str) -> str:
        if c in escapes:
            return escapes[c]
        return c if c.isprintable() and (c == " " or not c.isspace()) else f"\\u{{{ord(c):x}}}"

    return '"' + "".join(one(c) for c in text) + '"'


def by_limits(text: str) -> Rates | None:
    try:
        return [(item.amount, item.get_expiry()) for item in limits.parse_many(text)]
    except ValueError:
        return None


def by_django(text: str) -> tuple[int, int] | None:
    try:
        count, seconds = _split_rate(text)
    except (AttributeError, KeyError, ValueError):  # no match, unknown unit
        return None
    return (count, seconds)


def in_range(rates: Rates) -> bool:
    return all(1 <= count <= MAX_COUNT and seconds <= MAX_SECONDS for count, seconds in rates)


# --- limits' grammar ------------------------------------------------------------------------


def any_case(word: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(word), max_size=len(word))
    return flips.map(
        lambda up: "".join(c.upper() if u else c for c, u in zip(word, up, strict=True))
    )


spaces = st.text(st.sampled_from(WHITESPACE), max_size=2)


def number(low: int, high: int) -> st.SearchStrategy[str]:
    """Digits of a number in [low, high], at times with leading zeros; biased to small ones
    and to the bounds (the count's 2**32 - 1, the period's 2**62 ns)."""
    values = st.integers(low, 100) | st.integers(low, high) | st.sampled_from([high, high + 1])
    return st.builds(lambda n, zeros: "0" * zeros + str(n), values, st.sampled_from([0, 0, 0, 1]))


@st.composite
def limits_rate(draw: st.DrawFn) -> str:
    count = draw(number(1, MAX_COUNT))
    per = draw(st.sampled_from(["/", "per"]).flatmap(any_case))
    if per != "/":  # `per` needs no space before or after it, but usually has it
        per = draw(st.sampled_from([" ", ""])) + per + draw(st.sampled_from([" ", ""]))
    multiplier = draw(st.none() | number(1, MAX_SECONDS))
    unit = draw(st.sampled_from(UNITS)) + draw(st.sampled_from(["", "s"]))
    parts = [draw(spaces), count, draw(spaces), per, draw(spaces)]
    if multiplier is not None:
        parts += [multiplier, draw(spaces)]
    parts += [draw(any_case(unit)), draw(spaces)]
    return "".join(parts)


@st.composite
def limits_rates(draw: st.DrawFn) -> str:
    rates = draw(st.lists(limits_rate(), min_size=1, max_size=4))
    text = rates[0]
    for rate in rates[1:]:
        text += draw(st.sampled_from(",;|")) + rate
    return text


@settings(max_examples=1000, deadline=None)
@given(limits_rates())
@example("10/day|5/hour")
def test_what_limits_reads_we_read_alike(text: str) -> None:
    want = by_limits(text)
    assert want is not None, f"the strategy made a string limits refuses: {text!r}"
    got = ours(text)
    event("several rates" if len(want) > 1 else "one rate")
    event("joined by |" if "|" in text else "no |")
    if in_range(want):
        event("compared")
        assert got == want, text
    else:
        event("refused: count or period out of range")
        assert got is None, text


def test_limits_quirks_we_refuse_and_the_short_form_we_add() -> None:
    """Where the two grammars part, by decision (see the module doc of `src/rate.rs`)."""
    assert by_limits("0/minute") == [(0, 60)]  # nothing ever passes
    assert by_limits("10/0 seconds") == [(10, 1)]  # the 0 read as 1
    assert by_limits("1/second:;2/minute") == [(1, 1), (2, 60)]  # a stray ":" in its pattern
    assert by_limits("5/m") is None
    for text in ("0/minute", "10/0 seconds", "1/second:;2/minute"):
        assert ours(text) is None, text
    assert ours("5/m") == [(5, 60)]
    # A year is 360 days in `limits`, and here.
    assert ours("1/year") == by_limits("1/year") == [(1, 360 * 86_400)]


# --- django-ratelimit's short form ----------------------------------------------------------

short_rate = st.builds(
    lambda count, multiplier, unit: f"{count}/{multiplier or ''}{unit}",
    st.integers(1, 1_000) | st.integers(1, MAX_COUNT),
    st.none() | st.integers(1, 100) | st.integers(1, MAX_SECONDS),
    st.sampled_from("smhd"),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(short_rate, min_size=1, max_size=3), st.sampled_from(",;|"))
def test_what_django_ratelimit_reads_we_read_alike(rates: list[str], separator: str) -> None:
    want = [by_django(rate) for rate in rates]
    got = ours(separator.join(rates))
    if in_range([rate for rate in want if rate is not None]):
        event("compared")
        assert got == want, rates
    else:
        event("refused: period out of range")
        assert got is None, rates


@pytest.mark.parametrize(
    ("text", "django"),
    [("5/M", (5, 1)), ("5/", (5, 1)), ("5/10", (5, 10)), ("5/ms", (5, 60)), ("5/min", (5, 60))],
)
def test_django_quirks_we_refuse(text: str, django: tuple[int, int]) -> None:
    """django-ratelimit reads a prefix of the string, and a unit it does not find (`"M"`
    included) as seconds; here the unit is required and matched whole."""
    assert by_django(text) == django
    assert ours(text) is None


# --- strings of grammar pieces, in any order ------------------------------------------------

PIECES = [
    *"0123456789/ ,;|:.-xsmhd",
    "\t",
    "\u00a0",
    "per",
    "PER",
    "10",
    "007",
    "second",
    "Minutes",
    "hour",
    "days",
    "month",
    "years",
    "min",
    "ms",
    "4294967296",
    "4611686019",
]


def reference(text: str) -> Rates | None:
    """Our grammar from its documentation: each rate one that `limits` reads, or one in the
    short form (which reads as `limits` does the unit written out); no count or multiplier of
    0; within range."""
    rates: Rates = []
    for part in re.split(r"[,;|]", text):
        short = re.fullmatch(r"\s*([0-9]+/[0-9]*)([smhd])\s*", part)
        read = by_limits(short[1] + SHORT[short[2]] if short else part)
        multiplier = re.match(r"\s*[0-9]+\s*(?:/|per)\s*([0-9]+)", part, re.IGNORECASE)
        if read is None or (multiplier is not None and int(multiplier[1]) == 0):
            return None
        rates += read
    return rates if in_range(rates) else None


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """Rates of both forms, joined, then a few pieces inserted, deleted or replaced."""
    rates = draw(st.lists(limits_rate() | short_rate, min_size=1, max_size=3))
    text = rates[0]
    for rate in rates[1:]:
        text += draw(spaces) + draw(st.sampled_from(",;|")) + draw(spaces) + rate
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(["", *PIECES]))  # "" deletes
        text = text[:at] + piece + text[at + draw(st.integers(0, 1)) :]
    return text


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=9).map("".join) | near_misses())
def test_any_string_is_read_as_documented(text: str) -> None:
    """Refused when one of its rates is refused by both libraries (django-ratelimit allowed
    the whitespace `limits` allows around a rate; it reads no more than one rate, so the rates
    are asked one by one), and otherwise read as the documented grammar says."""
    got = ours(text)
    event("accepted" if got is not None else "refused")
    parts = re.split(r"[,;|]", text)
    if any(by_limits(part) is None and by_django(part.strip(WHITESPACE)) is None for part in parts):
        event("a rate both libraries refuse")
        assert got is None, text
    assert got == reference(text), text
