"""Outgoing mail through the operator's SMTP server (One API's SMTP options).

Used for verification codes, password-reset links and operator notifications. The settings
are One API's option names, so an operator moving over keeps them: ``SMTPServer``,
``SMTPPort``, ``SMTPAccount``, ``SMTPToken`` (the password), ``SMTPFrom`` and, as New API
added, ``SMTPSSLEnabled``. As One API does, port 465 (or ``SMTPSSLEnabled``) means TLS from
the first byte; any other port upgrades with STARTTLS whenever the server offers it, so a
password never crosses the network in clear unless the server offers no TLS at all.

The standard library's ``smtplib`` speaks the protocol (well kept, no dependency); it
blocks, so each message is sent on a worker thread and never holds the event loop.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

_IMPLICIT_TLS_PORT = 465
_TRUE = frozenset({"true", "1", "yes", "on"})


class MailError(Exception):
    """The message was not accepted: the SMTP server is unset, unreachable, or refused it."""


@dataclass(frozen=True)
class SmtpSettings:
    server: str
    port: int
    account: str
    password: str
    sender: str
    implicit_tls: bool

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> SmtpSettings | None:
        """The settings in One API's option names, or None when no SMTP server is set."""
        server = options.get("SMTPServer", "").strip()
        if not server:
            return None
        try:
            port = int(options.get("SMTPPort", "") or 587)
        except ValueError:
            port = 587
        account = options.get("SMTPAccount", "").strip()
        return cls(
            server=server,
            port=port,
            account=account,
            password=options.get("SMTPToken", ""),
            # One API sends from the account when no From is set.
            sender=options.get("SMTPFrom", "").strip() or account,
            implicit_tls=port == _IMPLICIT_TLS_PORT
            or options.get("SMTPSSLEnabled", "").strip().lower() in _TRUE,
        )


def build_message(
    settings: SmtpSettings, to: str, subject: str, text: str, html: str | None = None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    domain = settings.sender.rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


async def send_mail(
    settings: SmtpSettings,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    *,
    socket_timeout: float = 15.0,
) -> None:
    """Send one message; raises MailError with the server's reason when it is not accepted."""
    message = build_message(settings, to, subject, text, html)
    await asyncio.to_thread(_deliver, settings, message, socket_timeout)


def _deliver(settings: SmtpSettings, message: EmailMessage, timeout: float) -> None:
    context = ssl.create_default_context()
    try:
        smtp: smtplib.SMTP
        if settings.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                settings.server, settings.port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.server, settings.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if not settings.implicit_tls and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.account:
                smtp.login(settings.account, settings.password)
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"mail to {message['To']} not sent: {exc}") from exc
