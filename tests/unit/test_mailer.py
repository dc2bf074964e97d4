"""The mailer against a real SMTP server (aiosmtpd): delivery, login, refusals."""

from __future__ import annotations

import pytest

from tests.smtp_inbox import smtp_inbox
from unigate.mailer import MailError, SmtpSettings, send_mail


def test_settings_follow_one_api_option_names() -> None:
    assert SmtpSettings.from_options({}) is None
    assert SmtpSettings.from_options({"SMTPServer": "  "}) is None
    s = SmtpSettings.from_options(
        {"SMTPServer": "smtp.example.com", "SMTPPort": "465", "SMTPAccount": "a@example.com"}
    )
    assert s is not None
    assert (s.port, s.implicit_tls, s.sender) == (465, True, "a@example.com")
    s = SmtpSettings.from_options(
        {"SMTPServer": "smtp.example.com", "SMTPPort": "bad", "SMTPSSLEnabled": "true"}
    )
    assert s is not None
    assert (s.port, s.implicit_tls) == (587, True)


async def test_a_message_reaches_the_server_with_text_and_html() -> None:
    with smtp_inbox() as inbox:
        settings = SmtpSettings.from_options(inbox.options())
        assert settings is not None
        await send_mail(settings, "alice@example.com", "Your code", "code: 123456", "<b>123456</b>")
        message = inbox.wait_for("alice@example.com")
    assert message["Subject"] == "Your code"
    assert "noreply@unigate.test" in str(message["From"])
    assert message["Message-ID"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and "123456" in text.get_content()
    assert html is not None and "<b>123456</b>" in html.get_content()


async def test_wrong_credentials_and_no_server_raise_mail_error() -> None:
    with smtp_inbox() as inbox:
        options = inbox.options() | {"SMTPToken": "wrong"}
        settings = SmtpSettings.from_options(options)
        assert settings is not None
        with pytest.raises(MailError, match=r"bob@example\.com"):
            await send_mail(settings, "bob@example.com", "s", "t")
        assert inbox.messages == []
        port = inbox.port
    gone = SmtpSettings.from_options({"SMTPServer": "127.0.0.1", "SMTPPort": str(port)})
    assert gone is not None
    with pytest.raises(MailError):
        await send_mail(gone, "bob@example.com", "s", "t", socket_timeout=5)
