"""Connections: which CRM, where, and which environment variable holds the secret.

A connections file is TOML with one table per connection::

    [connections.hubspot-main]
    adapter = "hubspot"                      # a registered "crm" adapter
    base_url = "https://api.hubapi.com"      # overridable, e.g. http://127.0.0.1:8123 for a fake
    token_env = "HUBSPOT_TOKEN"              # the secret is read from this environment variable
    policy = "newest-wins"                   # optional: crm-wins | local-wins | newest-wins
    currency = "USD"                         # optional: currency of amounts that come without one
    mapping = "hubspot-stages.toml"          # optional: explicit stage mapping (relative to this file)

Other keys are adapter options (``page_size``, ``rate_limit = "100/10s"``, ...). The file never
holds a secret: :meth:`Connection.config` reads it from the environment mapping it is given, wraps
it in a :class:`~salesprocess.sync.Secret`, and it is never stored, printed or logged.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..errors import AuthError, Problem, ProcessFileError
from ..model import FrozenMap
from .mapping import StageMapping
from .timing import Secret

__all__ = ["ENGINE_KEYS", "Connection", "load_connections", "parse_rate"]

ENGINE_KEYS = ("source", "policy", "currency", "mapping", "owners", "max_attempts")
"""Keys read by the sync engine; every other key except the fixed ones goes to the adapter."""
_FIXED = ("adapter", "base_url", "token_env", "refresh_token_env", "client_id", "client_secret_env")
_POLICIES = ("crm-wins", "local-wins", "newest-wins")


def parse_rate(text: str) -> tuple[int, float]:
    """``"100/10s"`` → ``(100, 10.0)``; also ``"5/s"``, ``"190/10s"``, ``"1000/1m"``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(ms|s|m)?\s*", text)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"rate limit {text!r}: expected e.g. '100/10s'")
    per = float(m.group(2)) if m.group(2) else 1.0
    per *= {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(3)]
    if per <= 0:
        raise ValueError(f"rate limit {text!r}: the period must be positive")
    return int(m.group(1)), per


@attrs.frozen
class Connection:
    """One connection of a connections file."""

    name: str
    adapter: str
    base_url: str | None = None
    token_env: str | None = None
    refresh_token_env: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None
    options: FrozenMap = attrs.field(factory=FrozenMap, converter=FrozenMap)
    """Adapter options and engine settings (every other key of the table)."""
    path: str | None = None
    """The file the connection came from (relative paths in it resolve against its directory)."""

    @property
    def policy(self) -> str:
        return str(self.options.get("policy", "newest-wins"))

    @property
    def source(self) -> str:
        return str(self.options.get("source", self.name))

    @property
    def currency(self) -> str:
        return str(self.options.get("currency", "USD"))

    def mapping(self) -> StageMapping | None:
        m = self.options.get("mapping")
        if m is None:
            return None
        p = Path(str(m))
        if not p.is_absolute() and self.path is not None:
            p = Path(self.path).parent / p
        return StageMapping.from_toml(p)

    def adapter_options(self) -> dict[str, Any]:
        return {k: (v.to_dict() if isinstance(v, FrozenMap) else v)
                for k, v in self.options.items() if k not in ENGINE_KEYS}

    def config(self, environ: Mapping[str, str]) -> dict[str, Any]:
        """The adapter's config: ``base_url``, the secrets read from ``environ`` (as
        :class:`Secret`), and the adapter options. Raises :class:`AuthError` naming the
        variable (never its value) when a secret is missing."""
        cfg: dict[str, Any] = {"connection": self.name, **self.adapter_options()}
        if self.base_url is not None:
            cfg["base_url"] = self.base_url
        for key, env in (("token", self.token_env), ("refresh_token", self.refresh_token_env),
                         ("client_secret", self.client_secret_env)):
            if env is None:
                continue
            value = environ.get(env)
            if not value:
                raise AuthError(
                    f"connection {self.name!r}: environment variable {env} is not set "
                    f"(it should hold the {key.replace('_', ' ')})"
                )
            cfg[key] = Secret(value)
        if self.client_id is not None:
            cfg["client_id"] = self.client_id
        return cfg


def load_connections(path: str | Path) -> dict[str, Connection]:
    """Read a connections file; every problem is reported at once (with the file's path)."""
    p = str(path)
    try:
        data = tomllib.loads(Path(p).read_text(encoding="utf-8"))
    except OSError as e:
        raise ProcessFileError(p, f"cannot read: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ProcessFileError(p, f"invalid TOML: {e}") from None
    problems: list[Problem] = []
    out: dict[str, Connection] = {}
    for k in data:
        if k != "connections":
            problems.append(Problem(k, "unknown_key", f"unknown key {k!r}; connections go under [connections.NAME]"))
    conns = data.get("connections", {})
    if not isinstance(conns, Mapping) or not conns:
        problems.append(Problem("connections", "required", "expected at least one [connections.NAME] table"))
        conns = {}
    for name, t in conns.items():
        path_ = f"connections.{name}"
        if not isinstance(t, Mapping):
            problems.append(Problem(path_, "type", "expected a table"))
            continue
        if "/" in name:
            problems.append(Problem(path_, "value", "a connection name must not contain '/'"))
        adapter = t.get("adapter")
        if not isinstance(adapter, str) or not adapter:
            problems.append(Problem(f"{path_}.adapter", "required", "expected the adapter name, e.g. \"hubspot\""))
        for key in _FIXED[1:]:
            if key in t and not isinstance(t[key], str):
                problems.append(Problem(f"{path_}.{key}", "type", f"expected a string, got {type(t[key]).__name__}"))
        for key in ("token", "access_token", "refresh_token", "client_secret", "password", "api_key"):
            if key in t:
                problems.append(Problem(
                    f"{path_}.{key}", "secret_in_file",
                    f"secrets do not belong in the connections file; name an environment variable with {key.split('_')[0] if key != 'api_key' else 'token'}_env",
                ))
        pol = t.get("policy")
        if pol is not None and pol not in _POLICIES:
            problems.append(Problem(f"{path_}.policy", "value", f"expected one of {', '.join(_POLICIES)}, got {pol!r}"))
        rl = t.get("rate_limit")
        if rl is not None:
            try:
                parse_rate(str(rl))
            except ValueError as e:
                problems.append(Problem(f"{path_}.rate_limit", "value", str(e)))
        if "owners" in t and not isinstance(t["owners"], Mapping):
            problems.append(Problem(f"{path_}.owners", "type", "expected a table of CRM owner id = local rep id"))
        opts = {k: v for k, v in t.items() if k not in _FIXED and k not in (
            "token", "access_token", "refresh_token", "client_secret", "password", "api_key")}
        if isinstance(adapter, str):
            out[name] = Connection(
                name=name, adapter=adapter, base_url=t.get("base_url"), token_env=t.get("token_env"),
                refresh_token_env=t.get("refresh_token_env"), client_id=t.get("client_id"),
                client_secret_env=t.get("client_secret_env"), options=opts, path=p,
            )
    if problems:
        raise ProcessFileError(p, "invalid connections file", problems=problems)
    return out

