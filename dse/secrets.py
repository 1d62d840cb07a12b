"""Secrets in URLs and DSNs the user types (``--storage``): redaction for every message.

Pure functions (no third-party imports), so the CLI's last-resort error printer can scrub
any line it writes (:func:`scrub_secrets`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["redact_url", "scrub_secrets"]

_SECRET_KEYS = r"[A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token)"
"""Query / DSN keys whose values are secrets: ``password``, ``sslpassword``, ``pwd``,
``client_secret``, ``api_token``…"""


def _userinfo_secret(s: str) -> tuple[int, int] | None:
    """Span of the password in ``scheme://user:password@host…``. Conservative: the
    password runs from the first ``:`` after the user to the *last* ``@`` of the string,
    so a password holding ``/``, ``:``, ``@`` or ``?`` is hidden whole (a URL parser would
    read part of it as host, port or path)."""
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", s)
    if not m:
        return None
    at = s.rfind("@")
    if at < m.end():
        return None
    colon = s.find(":", m.end(), at)
    if colon < 0:
        return None
    return colon + 1, at


def redact_url(url: str) -> str:
    """``url`` with every secret replaced by ``***``: the userinfo password (whatever it
    holds) and the values of password-like query or DSN keys (``password``,
    ``sslpassword``, ``token``, …).

    >>> redact_url("postgresql://alice:pa:ss@h/db?sslmode=require&password=x")
    'postgresql://alice:***@h/db?sslmode=require&password=***'
    >>> redact_url("postgresql://dse:pa/ss-S@127.0.0.1:notaport/db?sslpassword=T")
    'postgresql://dse:***@127.0.0.1:notaport/db?sslpassword=***'
    >>> redact_url("host=h password=x dbname=d")
    'host=h password=*** dbname=d'
    >>> redact_url("num_key_value_heads=8 tokens=4")
    'num_key_value_heads=8 tokens=4'
    >>> redact_url("sqlite:////tmp/x.db")
    'sqlite:////tmp/x.db'
    """
    s = str(url)
    span = _userinfo_secret(s)
    if span is not None:
        s = s[:span[0]] + "***" + s[span[1]:]
    s = re.sub(rf"([?&;]{_SECRET_KEYS}=)[^&#;]*", r"\1***", s, flags=re.IGNORECASE)
    s = re.sub(rf"((?:^|\s){_SECRET_KEYS}\s*=\s*)\S+", r"\1***", s, flags=re.IGNORECASE)
    return s


def _secrets_of(url: str) -> list[str]:
    """The secret substrings of ``url`` (to scrub from third-party error texts)."""
    s = str(url)
    out = []
    span = _userinfo_secret(s)
    if span is not None:
        out.append(s[span[0]:span[1]])
    out += re.findall(rf"[?&;]{_SECRET_KEYS}=([^&#;]*)", s, flags=re.IGNORECASE)
    out += re.findall(rf"(?:^|\s){_SECRET_KEYS}\s*=\s*(\S+)", s, flags=re.IGNORECASE)
    # a parser that split the password at a URL delimiter may echo a piece of it
    out += [piece for x in list(out) for piece in re.split(r"[/@:?#]", x)
            if len(piece) >= 4 and piece != x]
    secrets = [x for x in out if x]
    from urllib.parse import unquote

    secrets += [unquote(x) for x in secrets if unquote(x) != x]
    return sorted(set(secrets), key=len, reverse=True)


def scrub_secrets(text: str, sources: Iterable[str]) -> str:
    """``text`` with every secret of every string in ``sources`` (command-line arguments,
    URLs) replaced by ``***``.

    >>> scrub_secrets("cannot reach x (u:pa/ss@h)", ["--storage", "postgresql://u:pa/ss@h/d"])
    'cannot reach x (u:***@h)'
    """
    out = str(text)
    for src in sources:
        for secret in _secrets_of(str(src)):
            out = out.replace(secret, "***")
    return out
