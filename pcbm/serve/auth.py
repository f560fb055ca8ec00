"""Bearer tokens: where they come from, how a request is checked, and when none are needed.

Tokens come from ``--token-file FILE`` (one per line; blank lines and ``#`` comments skipped) and
from the ``PCBM_API_TOKENS`` environment variable (comma-separated). Each is at least
:data:`MIN_TOKEN_CHARS` characters. A request's ``Authorization: Bearer TOKEN`` is compared with
every token in constant time (:func:`hmac.compare_digest`), all of them always, so the time taken
says nothing about which one was close. Tokens are never logged or echoed in an error.

Serving without tokens takes an explicit ``--allow-unauthenticated`` and a loopback host
(:func:`check_exposure`); anything else is refused before the server starts.

Example:
    >>> ok = TokenChecker(("a" * 32,))
    >>> ok.check("Bearer " + "a" * 32), ok.check("Bearer " + "b" * 32), ok.check(None)
    (True, False, False)
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from pcbm.errors import InputError

ENV = "PCBM_API_TOKENS"
MIN_TOKEN_CHARS = 16


def load_tokens(token_file: str | os.PathLike[str] | None = None, env: str | None = None) -> tuple[str, ...]:
    """The API tokens from ``token_file`` and ``PCBM_API_TOKENS`` (``env`` overrides the variable).

    Raises:
        InputError: a missing or unreadable file, or a token shorter than :data:`MIN_TOKEN_CHARS`
            (named by its line, never shown).
    """
    tokens: list[str] = []
    if token_file is not None:
        p = Path(token_file)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"--token-file {p} not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read --token-file {p}: {getattr(e, 'strerror', None) or type(e).__name__}") from None
        for line, raw in enumerate(text.splitlines(), 1):
            t = raw.strip()
            if not t or t.startswith("#"):
                continue
            if len(t) < MIN_TOKEN_CHARS or any(c.isspace() for c in t):
                raise InputError(f"--token-file {p}, line {line}: a token must be at least {MIN_TOKEN_CHARS} "
                                 "characters without spaces (make one with: python -c 'import secrets; "
                                 "print(secrets.token_urlsafe(32))')")
            tokens.append(t)
    value = os.environ.get(ENV, "") if env is None else env
    for i, raw in enumerate(value.split(","), 1):
        t = raw.strip()
        if not t:
            continue
        if len(t) < MIN_TOKEN_CHARS or any(c.isspace() for c in t):
            raise InputError(f"{ENV}: token {i} is shorter than {MIN_TOKEN_CHARS} characters or has spaces")
        tokens.append(t)
    return tuple(dict.fromkeys(tokens))


def token_file_warning(token_file: str | os.PathLike[str] | None) -> str | None:
    """A warning when the token file can be read by other users (None when fine or not given)."""
    if token_file is None:
        return None
    try:
        mode = Path(token_file).stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"--token-file {token_file} can be read by other users; chmod 600 it"
    return None


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, tokens: Sequence[str], allow_unauthenticated: bool) -> None:
    """Refuse a server that would answer without tokens, or anyone on the network without a token.

    Raises:
        InputError: no tokens and no ``--allow-unauthenticated``; or that flag on a non-loopback host.
    """
    if tokens:
        return
    if not allow_unauthenticated:
        raise InputError(f"no API tokens: give --token-file FILE or set {ENV} (comma-separated), or "
                         "--allow-unauthenticated on a loopback host (127.0.0.1) for local use")
    if not is_loopback(host):
        raise InputError(f"--allow-unauthenticated serves only a loopback host (127.0.0.1, ::1, localhost), "
                         f"not {host!r}: anyone who can reach it could use the model; give tokens instead")


class TokenChecker:
    """Checks ``Authorization`` header values against the tokens; with none, every request passes."""

    def __init__(self, tokens: Sequence[str]):
        self._tokens = tuple(t.encode("utf-8") for t in tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def check(self, authorization: str | None) -> bool:
        if not self._tokens:
            return True
        if not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        g = given.strip().encode("utf-8", "surrogateescape")
        ok = False
        for t in self._tokens:  # every token, always: no early exit
            ok |= hmac.compare_digest(g, t)
        return ok
