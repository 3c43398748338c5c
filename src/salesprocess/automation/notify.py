"""Messages and notifiers.

A notifier sends a :class:`Message` to one :class:`Recipient` and returns a :class:`Delivery`, or
raises :class:`~salesprocess.errors.AdapterError` when it gave up. Every message has a stable
``id`` (the rule's fire record, the action and the recipient): notifiers pass it on (an e-mail's
``Message-ID``, a webhook's delivery header) so the receiving side can drop a repeat.

Notifiers are plugins of kind ``"notifier"``: ``salesprocess_adapters.smtp`` (``smtp``) and
``salesprocess_adapters.webhook`` (``webhook``) ship with the library; :func:`open_notifiers`
builds named notifiers from configuration through a :class:`~salesprocess.SalesProcess`.
:class:`MemoryNotifier` keeps messages in a list (for tests and in-process consumers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from ..errors import PluginError, RemoteUnavailable

__all__ = ["Delivery", "MemoryNotifier", "Message", "Notifier", "Recipient", "open_notifiers"]


@attrs.frozen
class Recipient:
    """Who gets a message: an address (e-mail, or whatever the notifier routes by), a display
    name, a language (``zh``, ``en``...) and the rep or contact id it came from."""

    address: str | None
    name: str = ""
    language: str | None = None
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "name": self.name, "language": self.language, "id": self.id}


@attrs.frozen
class Message:
    """A rendered message. ``data`` is a JSON-safe description of what happened (rule, trigger,
    deal, account...), sent as the webhook body and kept in the fire record."""

    id: str
    recipient: Recipient
    subject: str
    body: str
    language: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "recipient": self.recipient.to_dict(), "subject": self.subject,
                "body": self.body, "language": self.language, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Message:
        r = d["recipient"]
        return cls(d["id"], Recipient(r.get("address"), r.get("name", ""), r.get("language"), r.get("id")),
                   d["subject"], d["body"], d.get("language"), d.get("data", {}))


@attrs.frozen
class Delivery:
    """A message handed over: how many attempts it took and the receiver's reference."""

    message_id: str
    attempts: int = 1
    reference: str = ""


@runtime_checkable
class Notifier(Protocol):
    """Sends one message; raises :class:`~salesprocess.errors.AdapterError` when it cannot."""

    def send(self, message: Message) -> Delivery: ...


class MemoryNotifier:
    """Keeps sent messages in :attr:`sent`. ``fail_next`` makes the next sends raise
    :class:`~salesprocess.errors.RemoteUnavailable` (an outage, for tests of retries)."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.fail_next = 0

    def send(self, message: Message) -> Delivery:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RemoteUnavailable(f"memory notifier: simulated outage for {message.id}")
        self.sent.append(message)
        return Delivery(message.id, 1, f"memory:{len(self.sent)}")


def open_notifiers(app: Any, config: Mapping[str, Mapping[str, Any]]) -> dict[str, Notifier]:
    """Named notifiers from configuration: ``{"email": {"kind": "smtp", "host": ...}, ...}``;
    ``kind`` names a notifier adapter registered with the shell ``app``."""
    out: dict[str, Notifier] = {}
    for name, cfg in config.items():
        kind = cfg.get("kind")
        if not isinstance(kind, str):
            raise PluginError(f"notifier {name!r}: configuration needs a kind (smtp, webhook, ...)")
        spec = app.adapter("notifier", kind)
        out[name] = spec.factory({k: v for k, v in cfg.items() if k != "kind"})
    return out
