"""Key functions: from a web request to the key a limiter counts.

A key function takes the framework's own request object (a Starlette/FastAPI ``Request``, a
Django ``HttpRequest`` or a Flask/Werkzeug ``Request``) and returns a ``str``. The functions here
read requests of all three frameworks; any callable of your own works too.

The client address is the socket peer unless that peer is a proxy you trust: only then is the
forwarding header read, right to left, skipping your own proxies, so a client cannot choose its
own key by sending a forged ``X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ._callables import check_arity

__all__ = [
    "KeyFunc",
    "accepts_asgi_scope",
    "header_key",
    "key_func_from_spec",
    "peer_address",
    "remote_address",
    "user_key",
]

#: A function from a framework's request object to the key the limiter counts.
KeyFunc = Callable[[Any], str]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The forwarding headers ``remote_address`` can read, by the name users pass.
_FORWARDING_HEADERS = {"x-forwarded-for": "X-Forwarded-For", "forwarded": "Forwarded"}


#: Marks the key functions of this module that read a raw ASGI scope as well as a request.
_ASGI_SCOPE_MARK = "_reads_asgi_scope"


def accepts_asgi_scope(key_func: object) -> bool:
    """Whether ``key_func`` reads a raw ASGI scope dict as well as a request: the Starlette
    middleware then skips building a ``Request`` for it."""
    return bool(getattr(key_func, _ASGI_SCOPE_MARK, False))


def peer_address(request: Any) -> str | None:
    """The address of the socket peer of ``request``, or None when the server gives none."""
    scope = request if type(request) is dict else getattr(request, "scope", None)
    if isinstance(scope, dict):  # Starlette / FastAPI, or a raw ASGI scope
        client = scope.get("client")
        return str(client[0]) if client else None
    meta = getattr(request, "META", None)
    if isinstance(meta, dict):  # Django
        return meta.get("REMOTE_ADDR") or None
    environ = getattr(request, "environ", None)
    if isinstance(environ, dict):  # Flask / Werkzeug
        return environ.get("REMOTE_ADDR") or None
    raise TypeError(
        f"cannot read a client address from a {type(request).__name__}: expected a Starlette, "
        "Django or Flask request (or pass a key_func of your own)"
    )


def header_values(request: Any, name: str) -> list[str]:
    """Every value of header ``name`` on ``request`` (case-insensitive), in arrival order."""
    if type(request) is dict:  # a raw ASGI scope: lowercase latin-1 names, as Starlette reads
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in request.get("headers", ()) if k.lower() == wanted]
    headers = getattr(request, "headers", None)
    if headers is None:
        raise TypeError(f"a {type(request).__name__} has no headers to read {name!r} from")
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:  # Starlette and Werkzeug keep repeated headers apart
        return [str(v) for v in getlist(name)]
    value = headers.get(name)  # Django has already joined repeats with ", "
    return [] if value is None else [str(value)]


def _networks(trusted_proxies: Iterable[str | _Network] | str) -> tuple[_Network, ...]:
    if isinstance(trusted_proxies, str):
        trusted_proxies = [trusted_proxies]
    networks = []
    for entry in trusted_proxies:
        if isinstance(entry, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(entry)
            continue
        if not isinstance(entry, str):
            raise TypeError(
                f"`trusted_proxies` entries must be CIDR strings, not {type(entry).__name__}"
            )
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"`trusted_proxies` entry {entry!r} is not an IP address or CIDR network"
            ) from None
    return tuple(networks)


def _parse_address(text: str) -> _Address | None:
    """An address from a peer or a forwarding header entry, or None if it is not one."""
    text = text.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:4711" in Forwarded
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    if "%" in text:  # zone index
        text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(values: list[str]) -> list[str]:
    """The ``for=`` entries of ``Forwarded`` header values (RFC 7239), in order."""
    entries = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, node = pair.partition("=")
                if name.strip().lower() == "for":
                    entries.append(node.strip())
    return entries


def remote_address(
    trusted_proxies: Iterable[str | _Network] | str = (),
    *,
    header: str = "X-Forwarded-For",
    ipv6_prefix: int | None = None,
) -> KeyFunc:
    """A key function giving the client's IP address.

    The key is the socket peer's address. When the peer is inside one of ``trusted_proxies``
    (CIDR strings such as ``"10.0.0.0/8"``), the ``header`` it forwarded is read from right to
    left and the first address that is not a trusted proxy is the client. Only one header is
    read, the one your proxy writes (``"X-Forwarded-For"`` or ``"Forwarded"``): a proxy passes on
    the other one untouched from the client. An entry that is not an address (``unknown``, an
    obfuscated name) stops the walk at the last proxy. ``ipv6_prefix=64`` counts an IPv6 client
    by its network (``"2001:db8:1:2::/64"``), since one host often holds a whole /64.
    IPv4-mapped IPv6 peers count as their IPv4 address.
    """
    networks = _networks(trusted_proxies)
    header_kind = _FORWARDING_HEADERS.get(header.lower()) if isinstance(header, str) else None
    if header_kind is None:
        raise ValueError(f"`header` must be 'X-Forwarded-For' or 'Forwarded', not {header!r}")
    if ipv6_prefix is not None:
        if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int):
            raise TypeError(f"`ipv6_prefix` must be an int, not {type(ipv6_prefix).__name__}")
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError(f"`ipv6_prefix` must be between 1 and 128, not {ipv6_prefix}")

    def trusted(address: _Address) -> bool:
        return any(address in network for network in networks)

    def as_key(address: _Address) -> str:
        if ipv6_prefix is not None and isinstance(address, ipaddress.IPv6Address):
            network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
            return str(network)
        return str(address)

    def key(request: Any) -> str:
        peer = peer_address(request)
        if peer is None:
            return "unknown"
        if not networks and ipv6_prefix is None and ":" not in peer:
            return peer  # the common case: a plain IPv4 peer, nothing to interpret
        address = _parse_address(peer)
        if address is None:
            return peer  # a unix socket path or a test client's name
        if not networks or not trusted(address):
            return as_key(address)
        raw = header_values(request, header_kind)
        hops = _forwarded_for(raw) if header_kind == "Forwarded" else ",".join(raw).split(",")
        client = address
        for hop in reversed(hops):
            if not hop.strip():
                continue
            hop_address = _parse_address(hop)
            if hop_address is None:
                break
            client = hop_address
            if not trusted(hop_address):
                break
        return as_key(client)

    key.__qualname__ = key.__name__ = "remote_address"
    setattr(key, _ASGI_SCOPE_MARK, True)
    return key


def _default_user_id(request: Any) -> str | None:
    """The authenticated user's id as Django, Starlette or Flask-Login expose it."""
    user = getattr(request, "user", None)  # Django's request.user
    if user is None:
        scope = getattr(request, "scope", None)
        if isinstance(scope, dict) and "user" in scope:  # Starlette AuthenticationMiddleware
            user = scope["user"]
    if user is None and "flask_login" in sys.modules:
        user = sys.modules["flask_login"].current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    for attribute in ("pk", "id", "identity", "username", "display_name"):
        try:
            value = getattr(user, attribute, None)
        except NotImplementedError:  # Starlette's BaseUser.identity
            value = None
        if value is not None and value != "":
            return str(value)
    if callable(getattr(user, "get_id", None)):  # Flask-Login's UserMixin
        return str(user.get_id())
    return None


def user_key(
    get_user_id: Callable[[Any], object | None] | None = None,
    *,
    fallback: KeyFunc | None = None,
) -> KeyFunc:
    """A key function giving ``"user:<id>"`` for an authenticated user, else ``fallback``.

    By default the id is read from Django's ``request.user``, Starlette's ``request.user``
    (``AuthenticationMiddleware``) or Flask-Login's ``current_user`` (its ``pk``, ``id``,
    ``identity`` or ``username``); ``get_user_id(request)`` replaces that lookup. Anonymous
    requests fall back to the client address (``remote_address()`` unless given).
    """
    if get_user_id is not None and not callable(get_user_id):
        raise TypeError(f"`get_user_id` must be callable, not {type(get_user_id).__name__}")
    lookup = get_user_id or _default_user_id
    anonymous = fallback or remote_address()

    def key(request: Any) -> str:
        user_id = lookup(request)
        return anonymous(request) if user_id is None else f"user:{user_id}"

    key.__qualname__ = key.__name__ = "user_key"
    return key


def header_key(name: str, *, fallback: KeyFunc | None = None) -> KeyFunc:
    """A key function giving ``"<name>:<value>"`` of a request header, such as an API key.

    A request without the header falls back to the client address (``remote_address()`` unless
    given), so leaving the header out does not escape the limit.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`name` must be a header name, not {name!r}")
    name = name.strip()
    lowered = name.lower()
    anonymous = fallback or remote_address()

    def key(request: Any) -> str:
        values = header_values(request, name)
        if not values or not values[0]:
            return anonymous(request)
        return f"{lowered}:{values[0]}"

    key.__qualname__ = key.__name__ = "header_key"
    setattr(key, _ASGI_SCOPE_MARK, accepts_asgi_scope(anonymous))
    return key


def key_func_from_spec(spec: str | KeyFunc, *, trusted_proxies: Any = ()) -> KeyFunc:
    """A key function from ``"ip"``, ``"user"``, ``"header:<name>"`` or a callable of the
    request (one that cannot take one argument is a TypeError here, not at the first request)."""
    if callable(spec):
        check_arity(spec, 1, "`key_func`", "key_func(request)")
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"a key must be 'ip', 'user', 'header:<name>' or a callable, not {type(spec).__name__}"
        )
    if spec == "ip":
        return remote_address(trusted_proxies)
    if spec == "user":
        return user_key(fallback=remote_address(trusted_proxies))
    if spec.startswith("header:") and spec[len("header:") :].strip():
        return header_key(spec[len("header:") :], fallback=remote_address(trusted_proxies))
    raise ValueError(f"a key must be 'ip', 'user', 'header:<name>' or a callable, not {spec!r}")
