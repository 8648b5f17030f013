"""Who may do what in class mode, without accounts: a student is the server's own session, never an id the browser
chooses; a teacher holds the passphrase, or a token made when the class was opened; attempts at both are throttled.

A student's id in a class is made by the server (``new_student``) and signed with a key only the server knows, so the
link that carries it (``?you=``) can give a reconnecting student their own entry back, but no browser can make up a
new one. The per-minute limits follow the session. A teacher's token is random, stored only as its hash, and ends
with its class.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Hashable

from ..i18n import _

ATTEMPTS_PER_MINUTE = 5  # joining with a code, trying the teacher's passphrase: per session
WINDOW_S = 60.0


class Throttled(Exception):
    """Too many attempts: ``wait_s`` says how long until the next one is taken."""

    def __init__(self, what: str, wait_s: float) -> None:
        super().__init__(_("too many {what} in a minute: try again in {seconds} s").format(
            what=what, seconds=max(1, round(wait_s))))  # fmt: skip
        self.wait_s = wait_s


class Throttle:
    """At most ``limit`` attempts per key within ``window_s`` seconds (a sliding window), in this process.

    Args:
        clock: seconds, monotonic (a fake one in the tests).
    """

    def __init__(self, limit: int = ATTEMPTS_PER_MINUTE, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._seen: dict[Hashable, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def attempt(self, key: Hashable, what: str = "attempts") -> None:
        """Count one attempt of ``key``.

        Raises:
            Throttled: when ``limit`` attempts were made in the window already (this one is not counted).
        """
        now = self.clock()
        with self._lock:
            seen = self._seen.setdefault(key, collections.deque())
            while seen and seen[0] <= now - self.window_s:
                seen.popleft()
            if len(seen) >= self.limit:
                raise Throttled(what, seen[0] + self.window_s - now)
            seen.append(now)
            if len(self._seen) > 10_000:  # sessions come and go: forget the ones with no attempt in the window
                for k in [k for k, d in self._seen.items() if not d or d[-1] <= now - self.window_s]:
                    del self._seen[k]


def _mac(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()[:16]


def new_student() -> str:
    """A student's id: random, made by the server."""
    return secrets.token_hex(8)


def signed(token: str, secret: str) -> str:
    """``token`` with its signature, as the ``?you=`` link carries it."""
    return f"{token}.{_mac(secret, token)}"


def verified(link: str, secret: str) -> str | None:
    """The student id a ``?you=`` value carries when this server signed it, else None (made up, or from another
    server's key)."""
    token, _, mac = link.partition(".")
    if len(token) != 16 or not all(c in "0123456789abcdef" for c in token):
        return None
    return token if hmac.compare_digest(mac, _mac(secret, token)) else None


def new_teacher_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    """What the database keeps of a teacher's token (a leaked database does not open a dashboard)."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_teacher(key: str, passphrase: str) -> bool:
    """Whether ``key`` is the teacher's passphrase (compared in constant time)."""
    return hmac.compare_digest(key.strip().encode(), passphrase.encode())
