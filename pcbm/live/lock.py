"""The live page's lock: a token in the page URL, an ``Origin`` check, and no open page on the network.

**The token.** ``pcbm live`` makes a new random token for each session
(:func:`secrets.token_urlsafe`, 24 bytes) unless ``--token-file FILE`` gives it (one per line, as
``pcbm serve`` reads them; several are all accepted), and prints the page URL with it:
``http://HOST:PORT/?token=TOKEN`` — the URL is the key. Every route but ``/healthz`` (the page itself,
``/ws``, ``/capture``, ``/summary``, ``/stats``, ``/session/…``) needs the token, either as
``Authorization: Bearer TOKEN`` or as the query parameter ``?token=TOKEN`` (the page uses the query
parameter: a browser cannot put a header on a WebSocket, an ``<img>`` or an ``<iframe>``); a missing or
wrong one gets 401. Tokens are compared in constant time (:class:`pcbm.serve.auth.TokenChecker`).

**The Origin check.** A request that carries an ``Origin`` header (browsers send it on every WebSocket
handshake and every cross-origin POST or fetch) is refused with 403 unless that origin is the page's
own: the same scheme, host and port as the request's ``Host`` header says it reached (default ports
filled in; ``Origin: null`` is foreign). So a page from anywhere else — another port of the same
machine included — can neither watch the scan nor press capture, even if it knew the token. A request
without ``Origin`` (curl, scripts) needs only the token. A refused WebSocket handshake is closed before
it is accepted (code 1008, policy violation), which uvicorn answers with HTTP 403 whatever the reason.

**No lock, loopback only.** ``--allow-unauthenticated`` serves without a token, and only on a loopback
host (:func:`page_tokens`); then a request whose ``Host`` is not a loopback name is refused too (a web
page cannot reach the port through a DNS name rebound to 127.0.0.1).

Example:
    >>> lock = PageLock(("t" * 32,))
    >>> def scope(path, **h):
    ...     return {"type": "http", "scheme": "http", "path": path, "query_string": b"",
    ...             "headers": [(k.encode(), v.encode()) for k, v in h.items()]}
    >>> lock.refusal(scope("/stats", host="10.0.0.5:8000", authorization="Bearer " + "t" * 32)) is None
    True
    >>> lock.refusal(scope("/stats", host="10.0.0.5:8000"))[0]
    401
    >>> lock.refusal(scope("/stats", host="10.0.0.5:8000", origin="http://evil.example"))[0]
    403
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from pcbm.errors import InputError
from pcbm.serve.auth import TokenChecker, is_loopback, load_tokens, token_file_warning

OPEN_PATHS = frozenset({"/healthz"})  # liveness probes need no token
_DEFAULT_PORT = {"http": 80, "https": 443}


def page_tokens(host: str, token_file: str | os.PathLike[str] | None,
                allow_unauthenticated: bool) -> tuple[tuple[str, ...], str | None]:
    """The page's tokens for ``pcbm live`` and a warning to print (or None), checked before anything starts.

    Returns:
        ``(tokens, warning)``: the tokens of ``token_file``, else one new random token; ``()`` with
        ``allow_unauthenticated`` (a loopback host only).

    Raises:
        InputError: both a token file and ``allow_unauthenticated``; that flag on a non-loopback host;
            a token file that is missing, unreadable, holds a short token or none.
    """
    if allow_unauthenticated:
        if token_file is not None:
            raise InputError("give --token-file or --allow-unauthenticated, not both")
        if not is_loopback(host):
            raise InputError(f"--allow-unauthenticated serves only a loopback host (127.0.0.1, ::1, localhost), not "
                             f"{host!r}: anyone on the network could watch the scan and press capture; drop the flag "
                             "(the page URL then carries a token)")
        return (), None
    if token_file is None:
        return (secrets.token_urlsafe(24),), None
    tokens = load_tokens(token_file, env="")  # only the file: PCBM_API_TOKENS is the REST service's
    if not tokens:
        raise InputError(f"--token-file {token_file} holds no token (one per line, at least 16 characters)")
    return tokens, token_file_warning(token_file)


def page_url(host: str, port: int, token: str | None) -> str:
    """The URL to open: ``http://HOST:PORT/?token=TOKEN`` (IPv6 hosts in brackets)."""
    h = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{h}:{port}/" + (f"?token={token}" if token else "")


def _endpoint(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of ``netloc`` with the scheme's default port; None when unparsable."""
    try:
        u = urlsplit(f"//{netloc}")
        port = u.port if u.port is not None else _DEFAULT_PORT.get(scheme)
    except ValueError:
        return None
    if not u.hostname or port is None:
        return None
    return scheme, u.hostname.lower(), port


def _loopback_name(host: str | None) -> bool:
    """True when a ``Host`` header names a loopback host (localhost, 127.0.0.0/8, [::1])."""
    end = _endpoint("http", host) if host else None
    return end is not None and is_loopback(end[1])


def same_origin(origin: str, scheme: str, host: str | None) -> bool:
    """True when ``origin`` is the page's own: the request's scheme (ws → http) and ``Host`` header."""
    if not host:
        return False
    own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    try:
        o = urlsplit(origin.strip())
    except ValueError:
        return False
    if o.scheme.lower() not in _DEFAULT_PORT or o.path not in ("", "/") or o.query or o.username:
        return False
    mine = _endpoint(own_scheme, host)
    return mine is not None and _endpoint(o.scheme.lower(), o.netloc) == mine


class PageLock:
    """Decides whether a request (an ASGI scope) may reach the live page's routes.

    Args:
        tokens: the page's tokens; empty serves without one (loopback ``Host`` names only).
        open_paths: paths that need no token and no Origin check.
    """

    def __init__(self, tokens: Sequence[str], open_paths: frozenset[str] = OPEN_PATHS):
        self.checker = TokenChecker(tokens)
        self.open_paths = open_paths
        self.refused: Counter[str] = Counter()  # refusals by reason: origin, token, host

    def refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """None when ``scope`` may pass; else (HTTP status, reason) — 403 foreign origin or host, 401 token."""
        if scope.get("path") in self.open_paths:
            return None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host")
        if not self.checker.enabled and not _loopback_name(host):
            return self._refuse("host", 403, "this page serves only loopback names without a token")
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, scope.get("scheme", "http"), host):
            return self._refuse("origin", 403, "cross-origin request refused: only the live page itself may "
                                               "open its WebSocket or send a POST")
        if self.checker.enabled and not self._token_ok(headers.get("authorization"), scope.get("query_string", b"")):
            return self._refuse("token", 401, "this page needs its token: open the URL that pcbm live printed "
                                              "(…/?token=…), or send Authorization: Bearer TOKEN")
        return None

    def _token_ok(self, authorization: str | None, query: bytes) -> bool:
        from starlette.datastructures import QueryParams

        if authorization and self.checker.check(authorization):
            return True
        given = QueryParams(query.decode("latin-1")).get("token")
        return bool(given) and self.checker.check("Bearer " + given)

    def _refuse(self, why: str, status: int, message: str) -> tuple[int, str]:
        self.refused[why] += 1
        return status, message


class LockMiddleware:
    """ASGI middleware: :class:`PageLock` in front of every HTTP route and WebSocket handshake.

    HTTP refusals are JSON ``{"detail": …}`` with status 401 or 403; a WebSocket handshake is closed
    before it is accepted, with code 1008 and the reason (an HTTP 403 on the wire: uvicorn logs a
    denial response with a body as an error, so none is sent). Every HTTP answer carries
    ``Referrer-Policy: no-referrer``, so the token in the page URL never leaves in a ``Referer``.
    """

    def __init__(self, app: Any, lock: PageLock):
        self.app, self.lock = app, lock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.lock.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send if scope["type"] == "websocket" else _no_referrer(send))
            return
        from starlette.responses import JSONResponse
        from starlette.websockets import WebSocket

        status, message = refused
        if scope["type"] == "http":
            await JSONResponse({"detail": message}, status, headers={"Referrer-Policy": "no-referrer"})(scope, receive,
                                                                                                        send)
        else:
            await WebSocket(scope, receive, send).close(1008, message[:120])


def _no_referrer(send: Any) -> Any:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"referrer-policy", b"no-referrer")]}
        await send(message)

    return wrapped
