"""SMTP and webhook notifiers against real local servers (aiosmtpd; a stdlib HTTP receiver).

The receivers bind to 127.0.0.1 on free ports and are shut down by their fixtures. The webhook
receiver verifies the HMAC signature itself (with hmac from the standard library, not with the
library's helper) and keeps deliveries by id; one receiver fails the first attempts of each
delivery, so retries are exercised end to end: nothing lost, nothing accepted twice.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from salesprocess import SalesProcess
from salesprocess.automation import Action, Message, Recipient, Rule, RuleEngine, RuleSet, Trigger
from salesprocess.errors import DefinitionError, RemoteUnavailable, RemoteValidationError
from salesprocess.model import Account, Contact, Rep
from salesprocess_adapters.smtp import SmtpNotifier, message_id_header
from salesprocess_adapters.webhook import WebhookNotifier, sign, verify_signature

aiosmtpd = pytest.importorskip("aiosmtpd")
from aiosmtpd.controller import Controller  # noqa: E402

SECRET = "s3cret-签名"


# ------------------------------------------------------------------------------------------------
# SMTP
# ------------------------------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    import socket

    with socket.socket() as s:  # a free port (the controller checks it can connect to its own)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


def _msg(mid: str, lang: str | None, address: str | None = "li.lei@example.com", subject: str = "主题",
         body: str = "正文") -> Message:
    return Message(mid, Recipient(address, "李雷", lang, "c1"), subject, body, lang, {"rule": "r"})


def test_smtp_delivers_utf8_mail_in_the_recipients_language(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    n = SmtpNotifier("127.0.0.1", port=port, sender="crm@example.com",
                     subject_prefix={"zh": "【提醒】", "en": "[Reminder]"},
                     footer={"zh": "此致", "en": "Regards"})
    d1 = n.send(_msg("m-zh", "zh", subject="华东制造 续约提醒", body="请跟进续约。"))
    d2 = n.send(_msg("m-en", "en-GB", address="amy@example.com", subject="Renewal", body="Please follow up."))
    assert (d1.attempts, d2.attempts) == (1, 1)
    assert len(inbox.messages) == 2
    zh, en = inbox.messages
    assert zh["Subject"] == "【提醒】 华东制造 续约提醒"
    assert zh["Content-Language"] == "zh"
    assert "请跟进续约。" in zh.get_content()
    assert "此致" in zh.get_content()
    assert zh["Message-ID"] == message_id_header("m-zh", "example.com") == d1.reference
    assert zh["X-Salesprocess-Delivery"] == "m-zh"
    assert en["Subject"] == "[Reminder] Renewal"
    assert "Regards" in en.get_content()
    assert inbox.envelopes[1] == ("crm@example.com", ["amy@example.com"])


def test_smtp_refused_recipient_is_not_retried(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    inbox.refuse.add("nobody@example.com")
    waits: list[float] = []
    n = SmtpNotifier("127.0.0.1", port=port, sender="crm@example.com", sleep=waits.append)
    with pytest.raises(RemoteValidationError):
        n.send(_msg("m1", "en", address="nobody@example.com"))
    with pytest.raises(RemoteValidationError):
        n.send(_msg("m2", "en", address=None))
    assert waits == []
    assert inbox.messages == []


def test_smtp_retries_with_backoff_then_gives_up() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    n = SmtpNotifier("127.0.0.1", port=port, sender="crm@example.com", retries=3, backoff=0.01,
                     sleep=waits.append, timeout=2)
    with pytest.raises(RemoteUnavailable) as e:
        n.send(_msg("m1", "zh"))
    assert waits == [0.01, 0.02, 0.04]
    assert "4 time(s)" in str(e.value)


def test_rules_send_mail_per_contact_language(smtp_server: tuple[_Inbox, int], tmp_path: Any) -> None:
    inbox, port = smtp_server
    sp = SalesProcess()
    notifiers = {"email": sp.adapter("notifier", "smtp").factory(
        {"host": "127.0.0.1", "port": port, "sender": "crm@example.com"})}
    store = sp.open_store(tmp_path / "s.sqlite")
    store.put(Rep("r1", "王芳", email="wang@example.com", language="zh"),
              Account("a1", "华东制造", country="CN", owner_id="r1",
                      created_at=datetime(2025, 6, 1, tzinfo=UTC)),
              Contact("c1", "张伟", account_id="a1", email="zhang@example.com", language="zh"),
              Contact("c2", "Amy", account_id="a1", email="amy@example.com", language="en"))
    rules = RuleSet((Rule("greet", Trigger("holiday", {"country": "CN", "names": ["National Day"]}),
                          [Action("notify", {"via": "email", "to": ["contacts"],
                                             "subject": {"zh": "{event.holiday_local}快乐", "en": "Happy {event.holiday}"},
                                             "body": {"zh": "{recipient.name}您好", "en": "Dear {recipient.name}"}})]),))
    report = sp.run_rules(RuleEngine(rules), store, datetime(2025, 10, 2, tzinfo=UTC), notifiers=notifiers)
    assert report.sent == 2
    assert report.send_failures == ()
    by_to = {m["To"].addresses[0].addr_spec: m for m in inbox.messages}
    assert by_to["zhang@example.com"]["Subject"] == "国庆节快乐"
    assert by_to["zhang@example.com"].get_content().strip() == "张伟您好"
    assert by_to["amy@example.com"]["Subject"] == "Happy National Day"
    again = sp.run_rules(RuleEngine(rules), store, datetime(2025, 10, 3, tzinfo=UTC), notifiers=notifiers)
    assert again.fired == ()
    assert len(inbox.messages) == 2
    store.close()


# ------------------------------------------------------------------------------------------------
# Webhooks
# ------------------------------------------------------------------------------------------------


class _Receiver:
    """Accepts signed deliveries; fails the first ``fail_first`` attempts of each delivery id."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.fail_first = fail_first
        self.status = status
        self.attempts: dict[str, int] = {}
        self.accepted: dict[str, list[dict[str, Any]]] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()

    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers["Content-Length"]))
        want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, h.headers.get("X-Salesprocess-Signature", "")):
            with self.lock:
                self.bad_signatures += 1
            h.send_response(401)
            h.end_headers()
            return
        did = h.headers["X-Salesprocess-Delivery"]
        with self.lock:
            n = self.attempts[did] = self.attempts.get(did, 0) + 1
            if n <= self.fail_first:
                h.send_response(self.status)
                h.send_header("Retry-After", "0")
                h.end_headers()
                return
            self.accepted.setdefault(did, []).append(json.loads(body))
        h.send_response(204)
        h.end_headers()


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(rec: _Receiver) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                rec.handle(self)

            def log_message(self, *a: Any) -> None:
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/hook"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_webhook_signature_verified_by_the_receiver(receiver_factory: Any) -> None:
    rec = _Receiver()
    url = receiver_factory(rec)
    n = WebhookNotifier(url, secret=SECRET)
    d = n.send(_msg("w-1", "zh", subject="赢单", body="D-1 已赢单"))
    assert d.attempts == 1
    assert rec.bad_signatures == 0
    (payload,) = rec.accepted["w-1"]
    assert payload["subject"] == "赢单"
    assert payload["recipient"]["name"] == "李雷"
    wrong = WebhookNotifier(url, secret="not-the-secret")
    with pytest.raises(RemoteValidationError):
        wrong.send(_msg("w-2", "en"))
    assert rec.bad_signatures == 1
    assert "w-2" not in rec.accepted


def test_webhook_fails_first_then_succeeds_on_retry(receiver_factory: Any) -> None:
    rec = _Receiver(fail_first=2)
    url = receiver_factory(rec)
    waits: list[float] = []
    n = WebhookNotifier(url, secret=SECRET, retries=4, backoff=0.01, sleep=waits.append)
    ids = [f"w-{i}" for i in range(5)]
    for i in ids:
        assert n.send(_msg(i, "en")).attempts == 3
    assert sorted(rec.accepted) == ids  # nothing lost
    assert all(len(v) == 1 for v in rec.accepted.values())  # nothing accepted twice
    assert all(rec.attempts[i] == 3 for i in ids)
    assert waits == [0.01, 0.02] * 5


def test_webhook_gives_up_after_retries_and_the_outbox_keeps_the_message(receiver_factory: Any, tmp_path: Any) -> None:
    rec = _Receiver(fail_first=3)
    url = receiver_factory(rec)
    n = WebhookNotifier(url, secret=SECRET, retries=1, backoff=0.0, sleep=lambda s: None)
    sp = SalesProcess()
    store = sp.open_store(tmp_path / "w.sqlite")
    store.put(Rep("r1", "Amy", email="amy@example.com", language="en"),
              Account("a1", "Acme", owner_id="r1", created_at=datetime(2020, 3, 1, tzinfo=UTC)))
    b2b = sp.process("b2b")
    store.save_process(b2b)
    won = b2b.open_deal("D-1", at=datetime(2024, 3, 1, tzinfo=UTC), actor="amy", account_id="a1",
                        owner_id="r1")
    store.save_deal(won, expected_version=None)
    rules = RuleSet((Rule("hello", Trigger("deal_created"),
                          [Action("notify", {"via": "hook", "to": ["owner"], "subject": "new deal {deal.id}",
                                             "body": "{event.stage}"})]),))
    engine = RuleEngine(rules)
    first = engine.run_due(datetime(2024, 3, 2, tzinfo=UTC), store, {"hook": n})
    assert len(first.fired) == 1
    assert first.sent == 0
    assert len(first.send_failures) == 1
    assert len(engine.pending(store)) == 1
    assert rec.accepted == {}
    second = RuleEngine(rules).run_due(datetime(2024, 3, 3, tzinfo=UTC), store, {"hook": n})
    assert second.fired == ()
    assert second.sent == 1
    assert engine.pending(store) == []
    (payloads,) = rec.accepted.values()
    assert len(payloads) == 1
    assert payloads[0]["subject"] == "new deal D-1"
    store.close()


def test_webhook_4xx_is_not_retried(receiver_factory: Any) -> None:
    rec = _Receiver(fail_first=99, status=422)
    url = receiver_factory(rec)
    waits: list[float] = []
    n = WebhookNotifier(url, secret=SECRET, sleep=waits.append)
    with pytest.raises(RemoteValidationError) as e:
        n.send(_msg("w-x", "en"))
    assert e.value.status == 422
    assert waits == []
    assert rec.attempts["w-x"] == 1


def test_sign_and_verify() -> None:
    body = "{\"a\":\"签名\"}".encode()
    s = sign(SECRET, body)
    assert verify_signature(SECRET, body, s)
    assert not verify_signature(SECRET, body + b" ", s)
    assert not verify_signature("other", body, s)
    assert not verify_signature(SECRET, body, None)


def test_notifier_configuration_errors_name_every_problem() -> None:
    sp = SalesProcess()
    with pytest.raises(DefinitionError) as e:
        sp.adapter("notifier", "smtp").factory({"port": "25", "colour": "red"})
    paths = {p.path for p in e.value.problems}
    assert {"host", "sender", "port", "colour"} <= paths
    with pytest.raises(DefinitionError) as e2:
        sp.adapter("notifier", "webhook").factory({"url": "ftp://x"})
    assert {p.path for p in e2.value.problems} == {"secret"}
    assert "secret" not in repr(WebhookNotifier("http://127.0.0.1:1/", secret="zzz-secret"))
    assert date(2026, 1, 1) + timedelta(days=1) == date(2026, 1, 2)
