"""Plugin: an SMTP e-mail notifier (adapter kind ``notifier``, name ``smtp``).

Messages arrive rendered in the recipient's language (automation rules pick the ``zh`` or ``en``
wording of their subject and body); the notifier adds an optional per-language ``subject_prefix``
and ``footer``, writes a UTF-8 plain-text e-mail with ``Content-Language``, and derives the
``Message-ID`` from the message id so a repeat is recognisable. Temporary failures (connection
errors, 4xx replies) are retried with exponential backoff; a refused recipient or 5xx reply is a
:class:`~salesprocess.errors.RemoteValidationError` (no retry); retries that run out raise
:class:`~salesprocess.errors.RemoteUnavailable`.

Configuration (``factory(config)``): ``host`` and ``sender`` (required), ``port`` (25),
``username`` / ``password``, ``starttls`` (false), ``ssl`` (false), ``timeout`` (10 s),
``retries`` (3), ``backoff`` (0.5 s, doubled per attempt, at most ``max_backoff`` 30 s),
``subject_prefix`` and ``footer`` (a string or a table of languages).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from salesprocess.errors import DefinitionError, Problem, RemoteUnavailable, RemoteValidationError
from salesprocess.hookspecs import hookimpl

if TYPE_CHECKING:  # smtplib and the automation package load when a notifier is used, not with the shell
    from email.message import EmailMessage

    from salesprocess.automation.notify import Delivery, Message
    from salesprocess.automation.templates import Text

__all__ = ["SmtpNotifier", "message_id_header"]


def message_id_header(message_id: str, domain: str = "salesprocess.invalid") -> str:
    """The ``Message-ID`` an e-mail for ``message_id`` carries (stable: same id, same header)."""
    return f"<{hashlib.sha256(message_id.encode()).hexdigest()[:40]}@{domain}>"


class SmtpNotifier:
    """Sends messages as e-mails through an SMTP server."""

    def __init__(
        self,
        host: str,
        *,
        sender: str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        subject_prefix: Text | str | Mapping[str, str] | None = None,
        footer: Text | str | Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls
        self.ssl = ssl
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        from salesprocess.automation.templates import Text

        self.subject_prefix = None if subject_prefix is None else Text.of(subject_prefix)
        self.footer = None if footer is None else Text.of(footer)
        self._sleep = sleep

    def __repr__(self) -> str:  # never shows the password
        return f"SmtpNotifier(host={self.host!r}, port={self.port}, sender={self.sender!r})"

    def email(self, message: Message) -> EmailMessage:
        """The e-mail :meth:`send` would send."""
        from email.message import EmailMessage
        from email.utils import formataddr

        r = message.recipient
        if not r.address or "@" not in r.address:
            raise RemoteValidationError(f"message {message.id}: recipient {r.id or r.name!r} has no e-mail address",
                                        fields=("recipient.address",))
        lang = message.language or r.language
        subject = message.subject
        if self.subject_prefix is not None:
            subject = f"{self.subject_prefix.pick(lang)} {subject}".strip()
        body = message.body
        if self.footer is not None:
            body = f"{body}\n\n-- \n{self.footer.pick(lang)}"
        em = EmailMessage()
        em["From"] = self.sender
        em["To"] = formataddr((r.name, r.address)) if r.name else r.address
        em["Subject"] = subject
        em["Message-ID"] = message_id_header(message.id, self.sender.rpartition("@")[2] or "salesprocess.invalid")
        em["X-Salesprocess-Delivery"] = message.id
        em.set_content(body, charset="utf-8")  # before Content-Language: it resets Content-* headers
        if lang:
            em["Content-Language"] = lang
        return em

    def _deliver(self, em: EmailMessage) -> None:
        import smtplib

        cls = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
        with cls(self.host, self.port, timeout=self.timeout) as s:
            if self.starttls and not self.ssl:
                s.starttls()
            if self.username:
                s.login(self.username, self._password or "")
            s.send_message(em)

    def send(self, message: Message) -> Delivery:
        import smtplib

        from salesprocess.automation.notify import Delivery

        em = self.email(message)
        attempt = 0
        while True:
            attempt += 1
            try:
                self._deliver(em)
                return Delivery(message.id, attempt, str(em["Message-ID"]))
            except smtplib.SMTPRecipientsRefused as e:
                raise RemoteValidationError(f"message {message.id}: recipient refused: {e.recipients}",
                                            fields=("recipient.address",)) from None
            except smtplib.SMTPResponseException as e:
                if 500 <= e.smtp_code < 600:
                    raise RemoteValidationError(
                        f"message {message.id}: the server refused it ({e.smtp_code})",
                        vendor_code=str(e.smtp_code), status=e.smtp_code) from None
                error = f"{e.smtp_code} {e.smtp_error!r}"
            except (smtplib.SMTPException, OSError) as e:
                error = f"{type(e).__name__}: {e}"
            if attempt > self.retries:
                raise RemoteUnavailable(
                    f"message {message.id}: SMTP {self.host}:{self.port} failed {attempt} time(s); last: {error}")
            self._sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))


_KEYS = {"host": str, "sender": str, "port": int, "username": str, "password": str,
         "starttls": bool, "ssl": bool, "timeout": (int, float), "retries": int,
         "backoff": (int, float), "max_backoff": (int, float), "subject_prefix": (str, dict),
         "footer": (str, dict)}


def _factory(config: Mapping[str, Any]) -> SmtpNotifier:
    probs = []
    for k, v in config.items():
        t = _KEYS.get(k)
        if t is None:
            probs.append(Problem(k, "unknown_key", f"unknown SMTP setting {k!r}"))
        elif not isinstance(v, cast(Any, t)) or (t is int and isinstance(v, bool)):
            probs.append(Problem(k, "type", f"{k}: unexpected value {type(v).__name__}"))
    for k in ("host", "sender"):
        if k not in config:
            probs.append(Problem(k, "required", f"the SMTP notifier needs {k!r}"))
    if probs:
        raise DefinitionError(probs, source="notifier smtp")
    cfg = dict(config)
    return SmtpNotifier(cfg.pop("host"), **cfg)


@hookimpl
def salesprocess_register_adapters(register: Callable[..., None]) -> None:
    register("notifier", "smtp", _factory, "SMTP e-mail in the recipient's language, with retries")
