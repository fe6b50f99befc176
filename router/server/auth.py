"""Optional API keys: `Authorization: Bearer <key>`, compared in constant time.

Keys come from `server.keys` (inline `key` or `key_env`) and from the comma-separated env var
named by `server.keys_env`. With no key at all, auth is off. Key values are never logged or
echoed; a key is known to the rest of the proxy only by its `name`.

The admin key (`server.admin_key`, or the env var `server.admin_key_env` names) has at least
`MIN_ADMIN_KEY_CHARS` characters. Wrong keys are throttled per client address (ratelimit.py,
`FailedKeys`): admin keys past admin.py's `ADMIN_FAILURES`, API keys past `API_KEY_FAILURES`.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from router.core.config import ConfigError, ServerSpec
from router.server.errors import APIError

MIN_ADMIN_KEY_CHARS = 16  # as `server.admin_key` (sections.py) asks of an inline key
# Wrong API keys a client address may send, in the `limits` notation (a moving window); past
# it every key from the address is a 429 until the oldest failure leaves the window. A client
# sent out with a wrong key and retrying meets 20 401s first, which say what is wrong.
API_KEY_FAILURES = "20/minute"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, its policy for model "router", its allowed models.
    `admin`: the admin key, which may read, delete and score every key's data."""

    name: str
    policy: str | None = None
    models: frozenset[str] | None = None  # None: every model
    admin: bool = False

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models

    def owns(self, owner: str | None) -> bool:
        """Whether data made with the key named `owner` is this caller's to see: its own
        key's, or any with the admin key. Another key's data is answered as absent (404)."""
        return self.admin or owner == self.name

    def hidden_names(
        self, models: Iterable[str], policies: Iterable[str], default_policy: str | None
    ) -> frozenset[str]:
        """The catalogue's model names and policy names (`p` and "router/p") this key may not
        use, which its errors must not show; none for a key limited to nothing. A key that may
        use "router" uses its own policy (else the default) by that name."""
        if self.models is None:
            return frozenset()
        hidden = {m for m in models if not self.may_use(m)}
        own = self.policy or default_policy
        for p in policies:
            if not (self.may_use(f"router/{p}") or (p == own and self.may_use("router"))):
                hidden |= {p, f"router/{p}"}
        return frozenset(hidden)


ANONYMOUS = Principal("anonymous")
# Not a key's name (key names are what `server.keys` gives; this one cannot be given there).
ADMIN = Principal("(admin key)", admin=True)


def admin_secret(spec: ServerSpec) -> str | None:
    """The admin key: `server.admin_key`, else the env var `server.admin_key_env` names."""
    if spec.admin_key:
        return spec.admin_key
    return os.environ.get(spec.admin_key_env or "", "") or None


def check_admin_key(spec: ServerSpec) -> None:
    """At start-up: an admin key from the environment is long enough to resist guessing (an
    inline `server.admin_key` is checked with the config). Raises a ConfigError naming the
    variable, never its value."""
    if spec.admin_key or not spec.admin_key_env:
        return
    secret = os.environ.get(spec.admin_key_env, "")
    if secret and len(secret) < MIN_ADMIN_KEY_CHARS:
        raise ConfigError(
            f"${spec.admin_key_env}",
            "server.admin_key_env",
            f"the admin key is {len(secret)} characters long; use at least "
            f"{MIN_ADMIN_KEY_CHARS} (e.g. `openssl rand -hex 16`), or unset the variable",
        )


def bearer_token(authorization: str | None, api_key: str | None = None) -> str | None:
    """The key sent as `Authorization: Bearer <key>` (or `x-api-key: <key>`), if any."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return api_key.strip() if api_key and api_key.strip() else None


def is_admin(spec: ServerSpec, authorization: str | None, api_key: str | None = None) -> bool:
    """Whether these headers carry the admin key (compared in constant time)."""
    admin, token = admin_secret(spec), bearer_token(authorization, api_key)
    return (
        admin is not None
        and token is not None
        and hmac.compare_digest(token.encode(), admin.encode())
    )


class KeyRing:
    """The configured keys; `find()` maps a key to its Principal (app.py's `api_key` reads the
    headers, counts wrong keys and answers the 401s: `missing_key`, `invalid_key`)."""

    def __init__(self, spec: ServerSpec) -> None:
        check_admin_key(spec)  # `router serve` builds a KeyRing before anything else starts
        self._keys: list[tuple[bytes, Principal]] = []
        for k in spec.keys:
            secret = k.key if k.key is not None else os.environ.get(k.key_env or "", "")
            if not secret:
                # A key whose env var is unset must not become "any empty key works".
                raise ValueError(f"server.keys: key {k.name!r}: env var {k.key_env} is not set")
            models = frozenset(k.models) if k.models is not None else None
            self._keys.append((secret.encode(), Principal(k.name, k.policy, models)))
        if spec.keys_env:
            extra = [s.strip() for s in os.environ.get(spec.keys_env, "").split(",") if s.strip()]
            for i, secret in enumerate(extra, 1):
                self._keys.append((secret.encode(), Principal(f"{spec.keys_env.lower()}-{i}")))

    def secrets(self) -> list[str]:
        """The key values, for redaction only."""
        return [s.decode() for s, _ in self._keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def find(self, token: str) -> Principal | None:
        """The caller whose key is `token`, or None. Compared against every key, always, in
        constant time, so timing does not reveal which one matched."""
        given = token.encode()
        found = None
        for secret, principal in self._keys:
            if hmac.compare_digest(given, secret) and found is None:
                found = principal
        return found


def missing_key() -> APIError:
    """The 401 of a request without a key while auth is on (no guess: never counted)."""
    return APIError(
        401,
        "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
        None,
        "invalid_api_key",
        {"www-authenticate": "Bearer"},
    )


def invalid_key() -> APIError:
    """The 401 of a key that is not one of the configured keys."""
    return APIError(401, "invalid API key", None, "invalid_api_key", {"www-authenticate": "Bearer"})
