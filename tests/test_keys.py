"""Key functions read the client from real Starlette, Django and Werkzeug request objects, and
trust forwarding headers only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from django.http.request import HttpHeaders
from hypothesis import assume, given
from hypothesis import strategies as st
from starlette.requests import Request as StarletteRequest
from werkzeug.test import EnvironBuilder

from rust_py_rate_limit.keys import (
    accepts_asgi_scope,
    header_key,
    key_func_from_spec,
    peer_address,
    remote_address,
    user_key,
)

Headers = list[tuple[str, str]]


def starlette_request(peer: str | None, headers: Headers = ()) -> Any:  # type: ignore[assignment]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": None if peer is None else (peer, 5555),
    }
    return StarletteRequest(scope)


class DjangoRequest:
    """What Django's HttpRequest offers a key function, without needing Django settings."""

    def __init__(self) -> None:
        self.META: dict[str, str] = {}
        self.user: object = None

    @property
    def headers(self) -> HttpHeaders:
        return HttpHeaders(self.META)


def django_request(peer: str | None, headers: Headers = ()) -> Any:  # type: ignore[assignment]
    request = DjangoRequest()
    if peer is not None:
        request.META["REMOTE_ADDR"] = peer
    for name, value in headers:
        meta = "HTTP_" + name.upper().replace("-", "_")
        # A WSGI server joins repeated headers with ", ", as Django then sees them.
        request.META[meta] = f"{request.META[meta]}, {value}" if meta in request.META else value
    return request


def werkzeug_request(peer: str | None, headers: Headers = ()) -> Any:  # type: ignore[assignment]
    environ_base = {} if peer is None else {"REMOTE_ADDR": peer}
    builder = EnvironBuilder(path="/", headers=list(headers), environ_base=environ_base)
    request = builder.get_request()
    if peer is None:
        request.environ.pop("REMOTE_ADDR", None)
    return request


def asgi_scope(peer: str | None, headers: Headers = ()) -> Any:  # type: ignore[assignment]
    """The raw scope the Starlette middleware hands the built-in key functions."""
    return starlette_request(peer, headers).scope


MAKERS: list[Callable[..., Any]] = [starlette_request, django_request, werkzeug_request, asgi_scope]
each_framework = pytest.mark.parametrize(
    "make", MAKERS, ids=["starlette", "django", "werkzeug", "asgi-scope"]
)


@each_framework
def test_the_peer_is_the_key_by_default(make: Callable[..., Any]) -> None:
    key = remote_address()
    assert key(make("203.0.113.7")) == "203.0.113.7"
    assert peer_address(make("203.0.113.7")) == "203.0.113.7"


@each_framework
def test_a_forged_forwarding_header_from_an_untrusted_peer_is_ignored(
    make: Callable[..., Any],
) -> None:
    spoofed = [("X-Forwarded-For", "1.1.1.1"), ("Forwarded", "for=2.2.2.2")]
    assert remote_address()(make("203.0.113.7", spoofed)) == "203.0.113.7"
    trusting_others = remote_address(["10.0.0.0/8"])
    assert trusting_others(make("203.0.113.7", spoofed)) == "203.0.113.7"


@each_framework
def test_a_trusted_proxy_forwards_the_client(make: Callable[..., Any]) -> None:
    key = remote_address(["10.0.0.0/8"])
    assert key(make("10.0.0.1", [("X-Forwarded-For", "198.51.100.4")])) == "198.51.100.4"


@each_framework
def test_the_rightmost_untrusted_hop_wins_over_what_the_client_wrote(
    make: Callable[..., Any],
) -> None:
    # The client wrote "1.1.1.1"; our proxies (10.x) appended the real client and each other.
    key = remote_address(["10.0.0.0/8"])
    forwarded = [("X-Forwarded-For", "1.1.1.1, 198.51.100.4, 10.0.0.9")]
    assert key(make("10.0.0.1", forwarded)) == "198.51.100.4"


@each_framework
def test_repeated_forwarding_headers_are_read_as_one_list(make: Callable[..., Any]) -> None:
    key = remote_address(["10.0.0.0/8"])
    repeated = [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "198.51.100.4")]
    assert key(make("10.0.0.1", repeated)) == "198.51.100.4"


@each_framework
def test_the_forwarded_header_when_configured(make: Callable[..., Any]) -> None:
    key = remote_address(["10.0.0.0/8"], header="Forwarded")
    value = 'for=1.1.1.1, for="[2001:db8::7]:4711";proto=https, for=10.0.0.3'
    assert key(make("10.0.0.1", [("Forwarded", value)])) == "2001:db8::7"
    # The header it was not told to read is the client's to forge, so it is ignored.
    assert key(make("10.0.0.1", [("X-Forwarded-For", "1.1.1.1")])) == "10.0.0.1"


@each_framework
def test_a_trusted_proxy_without_the_header_is_the_client(make: Callable[..., Any]) -> None:
    assert remote_address(["10.0.0.0/8"])(make("10.0.0.1")) == "10.0.0.1"


@each_framework
def test_an_entry_that_is_no_address_stops_at_the_last_proxy(make: Callable[..., Any]) -> None:
    key = remote_address(["10.0.0.0/8"])
    assert key(make("10.0.0.1", [("X-Forwarded-For", "garbage, 10.0.0.2")])) == "10.0.0.2"
    forwarded = remote_address(["10.0.0.0/8"], header="Forwarded")
    assert forwarded(make("10.0.0.1", [("Forwarded", "for=unknown")])) == "10.0.0.1"


@each_framework
def test_ipv6_clients_grouped_by_prefix(make: Callable[..., Any]) -> None:
    key = remote_address(ipv6_prefix=64)
    assert key(make("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64"
    assert key(make("2001:db8:1:2:bbbb::9")) == "2001:db8:1:2::/64"
    assert key(make("2001:db8:1:3::1")) == "2001:db8:1:3::/64"
    assert key(make("203.0.113.7")) == "203.0.113.7"
    assert remote_address()(make("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2:aaaa::1"


@each_framework
def test_ipv4_mapped_peers_count_as_ipv4(make: Callable[..., Any]) -> None:
    assert remote_address()(make("::ffff:203.0.113.7")) == "203.0.113.7"


@each_framework
def test_a_request_without_a_peer(make: Callable[..., Any]) -> None:
    assert peer_address(make(None)) is None
    assert remote_address()(make(None)) == "unknown"


@each_framework
def test_header_key_and_its_fallback(make: Callable[..., Any]) -> None:
    key = header_key("X-Api-Key")
    assert key(make("203.0.113.7", [("x-api-key", "k-123")])) == "x-api-key:k-123"
    assert key(make("203.0.113.7")) == "203.0.113.7"
    assert key_func_from_spec("header:X-Api-Key")(make("1.2.3.4", [("X-Api-Key", "a")])) == (
        "x-api-key:a"
    )


class _User:
    def __init__(self, pk: object, authenticated: bool = True) -> None:
        self.pk = pk
        self.is_authenticated = authenticated


def test_user_key_reads_django_request_user() -> None:
    request = django_request("203.0.113.7")
    request.user = _User(42)
    assert user_key()(request) == "user:42"
    request.user = _User(42, authenticated=False)
    assert user_key()(request) == "203.0.113.7"


def test_user_key_reads_starlette_scope_user() -> None:
    from starlette.authentication import SimpleUser, UnauthenticatedUser

    request = starlette_request("203.0.113.7")
    request.scope["user"] = SimpleUser("ada")
    assert user_key()(request) == "user:ada"
    request.scope["user"] = UnauthenticatedUser()
    assert user_key()(request) == "203.0.113.7"


def test_user_key_with_a_lookup_of_your_own() -> None:
    key = user_key(lambda request: request.headers.get("x-user"), fallback=lambda r: "anon")
    assert key(starlette_request("1.2.3.4", [("X-User", "7")])) == "user:7"
    assert key(starlette_request("1.2.3.4")) == "anon"


def test_spec_names_give_the_key_functions() -> None:
    request = django_request("10.0.0.1", [("X-Forwarded-For", "198.51.100.4")])
    assert key_func_from_spec("ip")(request) == "10.0.0.1"
    assert key_func_from_spec("ip", trusted_proxies=["10.0.0.0/8"])(request) == "198.51.100.4"
    request.user = _User(5)
    assert key_func_from_spec("user")(request) == "user:5"

    def custom(request: Any) -> str:
        return "same"

    assert key_func_from_spec(custom) is custom


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: remote_address(["10.0.0.0/33"]), ValueError, "'10.0.0.0/33'"),
        (lambda: remote_address(["not-a-net"]), ValueError, "'not-a-net'"),
        (lambda: remote_address([10]), TypeError, "int"),
        (lambda: remote_address(header="X-Real-IP"), ValueError, "'X-Real-IP'"),
        (lambda: remote_address(ipv6_prefix=0), ValueError, "ipv6_prefix"),
        (lambda: remote_address(ipv6_prefix=True), TypeError, "ipv6_prefix"),
        (lambda: header_key(""), ValueError, "''"),
        (lambda: user_key(get_user_id=5), TypeError, "get_user_id"),  # type: ignore[arg-type]
        (lambda: key_func_from_spec("cookie"), ValueError, "'cookie'"),
        (lambda: key_func_from_spec("header:"), ValueError, "'header:'"),
        (lambda: key_func_from_spec(3), TypeError, "int"),  # type: ignore[arg-type]
    ],
)
def test_bad_key_settings_name_the_value(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("[", r"\[").replace("/", "/")):
        call()


def test_a_request_of_no_known_framework_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="object"):
        remote_address()(object())


def test_a_single_cidr_string_is_accepted() -> None:
    key = remote_address("10.0.0.0/8")
    assert key(django_request("10.0.0.1", [("X-Forwarded-For", "198.51.100.4")])) == (
        "198.51.100.4"
    )


addresses = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: str(a)))


@given(client=addresses, forged=st.lists(addresses, max_size=3), proxies=st.integers(0, 3))
def test_the_client_cannot_choose_its_key(client: str, forged: list[str], proxies: int) -> None:
    """Whatever a client writes into X-Forwarded-For, behind any chain of trusted proxies the
    key is the address the first trusted proxy saw (or the peer, when there is no proxy)."""
    trusted = ["10.0.0.0/8"]
    # A client inside the trusted network is a proxy, not a client.
    assume(ipaddress.ip_address(client) not in ipaddress.ip_network(trusted[0]))
    key = remote_address(trusted)
    chain = [*forged, client] + [f"10.0.0.{i + 2}" for i in range(proxies - 1)]
    peer = "10.0.0.1" if proxies else client
    headers = (
        [("X-Forwarded-For", ", ".join(chain))]
        if proxies
        else [("X-Forwarded-For", ", ".join(forged or ["1.1.1.1"]))]
    )
    expected = str(ipaddress.ip_address(client))
    mapped = ipaddress.ip_address(client)
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
        expected = str(mapped.ipv4_mapped)
        assume(ipaddress.ip_address(expected) not in ipaddress.ip_network(trusted[0]))
    assert key(starlette_request(peer, headers)) == expected


def test_the_builtin_address_and_header_keys_read_a_raw_asgi_scope() -> None:
    assert accepts_asgi_scope(remote_address())
    assert accepts_asgi_scope(header_key("X-Api-Key"))
    assert not accepts_asgi_scope(header_key("X-Api-Key", fallback=lambda request: "anon"))
    assert not accepts_asgi_scope(user_key())
    assert not accepts_asgi_scope(lambda request: "k")


def test_a_key_function_that_cannot_take_the_request_is_refused_where_it_is_given() -> None:
    # 0.3.1's Flask key functions took no argument: each request then failed with a 500.
    from flask import Flask

    from rust_py_rate_limit.django import ratelimit
    from rust_py_rate_limit.fastapi import RateLimit
    from rust_py_rate_limit.flask import FlaskRateLimiter

    def no_request() -> str:
        return "k"

    def two_things(request: object, other: object) -> str:
        return "k"

    message = r"`key_func` is called as key_func\(request\), which \S*no_request\(\)"
    with pytest.raises(TypeError, match=message):
        FlaskRateLimiter(Flask("keys"), limit=1, window_seconds=1, key_func=no_request)
    with pytest.raises(TypeError, match=message):
        RateLimit("1/minute", key_func=no_request)
    with pytest.raises(TypeError, match=r"two_things\(request: 'object', other: 'object'\)"):
        ratelimit("1/minute", key_func=two_things)
    # what can take one argument passes: a default, *args, a builtin without a signature
    RateLimit("1/minute", key_func=lambda request, extra=None: "k")
    RateLimit("1/minute", key_func=lambda *args: "k")
    RateLimit("1/minute", key_func=str)
