"""A real SMTP server (aiosmtpd) on a free port, for tests that read the mail unigate sends.

It speaks the whole protocol (EHLO, AUTH LOGIN/PLAIN, DATA), so unigate's mailer is tested
against a real peer; with ``password`` set it refuses any other credentials, as a real
provider's server does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from unigate_cli.devstack import free_port


@dataclass
class Inbox:
    host: str
    port: int
    account: str
    password: str
    messages: list[EmailMessage] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def options(self) -> dict[str, str]:
        """One API's SMTP options pointing at this server."""
        return {
            "SMTPServer": self.host,
            "SMTPPort": str(self.port),
            "SMTPAccount": self.account,
            "SMTPToken": self.password,
            "SMTPFrom": f"unigate <{self.account}>",
        }

    def wait_for(self, to: str, timeout: float = 30.0) -> EmailMessage:
        """The first message addressed to ``to``, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self.messages:
                    if to in str(message["To"]):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {to} within {timeout} s")
                self._arrived.wait(left)

    def deliver(self, raw: bytes) -> None:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._inbox.deliver(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_inbox(
    account: str = "noreply@unigate.test", password: str = "smtp-secret"
) -> Iterator[Inbox]:
    inbox = Inbox(host="127.0.0.1", port=free_port(), account=account, password=password)

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == account
            and data.password.decode() == password
        )
        # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        _Handler(inbox),
        hostname=inbox.host,
        port=inbox.port,
        authenticator=authenticate,
        # The test server has no certificate; the mailer logs in only after STARTTLS when the
        # server offers it, and this one does not.
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
