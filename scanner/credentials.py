"""Credentials: where a secret comes from (inline, environment, file) and a string that does not print itself.

Every value read here is registered with the log redactor, so it is masked wherever it might appear in a
log line; error messages name the environment variable or file, never the value, and never echo a URL
(webhook URLs carry their token in the path or the query).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scanner.logging import register_secret


class CredentialError(Exception):
    """A credential cannot be read or is malformed; the message is safe to show."""


class Secret:
    """A string that does not print itself. ``reveal()`` is the only way to its value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)  # scrubbed from any log line that ever quotes it

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not picklable")


def read_credential(inline: str | None, env: str | None, file: str | None, *, is_url: bool) -> str:
    """The stripped value from the one source given; CredentialError naming the source, not the value."""
    # The variable's name and the file's path are not quoted: a secret typed there by mistake (a key in
    # secret_env, a URL in url_file) would be printed, and the key path in front of the message names the
    # line to look at.
    if inline is not None:
        value = inline
        if not value.strip():
            raise CredentialError("the inline value is empty")
    elif env is not None:
        value = os.environ.get(env, "")
        if not value.strip():
            raise CredentialError("the environment variable it names is unset or empty")
    elif file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CredentialError(f"the file it names cannot be read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise CredentialError("the file it names is not UTF-8 text") from None
        if not value.strip():
            raise CredentialError("the file it names is empty")
    else:
        raise CredentialError("no source given")
    value = value.strip()
    if is_url:
        problem = url_problem(value)
        if problem:
            raise CredentialError(f"{problem} (value hidden: webhook URLs carry tokens)")
    register_secret(value)
    return value


def url_problem(url: str) -> str | None:
    """Why ``url`` is no acceptable webhook URL (https, or http to a loopback host), or None."""
    # Without the parser's words: they quote the text after a colon, which in a webhook URL may be a token.
    problem = absolute_url_problem(url, ("https", "http"), detail=False)
    if problem is not None:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http" and not is_loopback(host):
        return "plain http is allowed for loopback hosts only: use https"
    return None


def absolute_url_problem(url: str, schemes: tuple[str, ...], *, detail: bool = True) -> str | None:
    """Why ``url`` is not an absolute URL of one of ``schemes`` with a host and a valid port, or None.
    ``detail``: say what the parser found wrong (it quotes part of the URL: never for a secret one)."""
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # .port raises for "abc" or 99999
    except ValueError as exc:
        return f"not a URL ({exc})" if detail else "not a URL (a bad host or port)"
    if parts.scheme not in schemes or not host:
        return f"expected an absolute {'/'.join(schemes)} URL"
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
