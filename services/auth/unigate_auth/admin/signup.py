"""Signing oneself up and back in by mail, as One API does: registration under its options
(``RegisterEnabled``, ``PasswordRegisterEnabled``, ``EmailVerificationEnabled``,
``EmailDomainRestrictionEnabled`` + ``EmailDomainWhitelist``), verification codes and
password-reset links sent through the SMTP options (``unigate.mailer``), Turnstile's check
(``unigate_auth.turnstile``), and the sign-up rewards of invitations.

Codes and tokens are ``unigate_auth.mail_codes``'s: hashed, single-use, short-lived and
rate-limited. A reset sets a new random password and shows it once (One API's
``POST /api/user/reset``), and ends every session and the access token of that user, as any
password change does. Asking for a reset link for an address that has no account answers as
for one that has (nothing is sent): the answer does not tell who is registered.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from urllib.parse import quote

import asyncpg
import grpc
from email_validator import EmailNotValidError, validate_email

from unigate.mailer import MailError, SmtpSettings, send_mail
from unigate.v1 import admin_pb2
from unigate_auth.admin.invitations import (
    INVITATION_OPTIONS,
    assign_aff_code,
    inviter_of,
    reward_signup,
)
from unigate_auth.admin.rpc import (
    AdminBase,
    Empty,
    Failure,
    check_password,
    check_username,
    denied,
    invalid,
    public,
    rpc,
)
from unigate_auth.admin.sessions import ROLE_USER, Caller, hash_password
from unigate_auth.admin.topups import TopUpRpcs
from unigate_auth.admin.users import create_user, user_message_of
from unigate_auth.mail_codes import (
    new_reset_token,
    new_verification_code,
    normalize_email,
)
from unigate_auth.turnstile import TurnstileUnavailable, siteverify

log = logging.getLogger(__name__)

MAX_EMAIL = 254
SIGNUP_OPTIONS = (
    "RegisterEnabled",
    "PasswordRegisterEnabled",
    "EmailVerificationEnabled",
    "EmailDomainRestrictionEnabled",
    "EmailDomainWhitelist",
    "SystemName",
    "ServerAddress",
)


def _on(options: dict[str, str], key: str, default: bool = False) -> bool:
    value = options.get(key)
    return default if value is None or value == "" else value.strip().lower() == "true"


def unavailable(message: str) -> Failure:
    """Something outside, not the caller, failed (the SMTP server, siteverify): try later."""
    return Failure(grpc.StatusCode.ABORTED, message)


def checked_email(email: str, options: dict[str, str]) -> str:
    """The address, normalized, if its syntax is right and its domain allowed."""
    email = normalize_email(email)
    if not email or len(email) > MAX_EMAIL:
        raise invalid("an email address is required")
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise invalid("that is not a valid email address") from None
    if _on(options, "EmailDomainRestrictionEnabled"):
        allowed = {
            d.strip().lower().lstrip("@")
            for d in options.get("EmailDomainWhitelist", "").split(",")
            if d.strip()
        }
        if email.rpartition("@")[2] not in allowed:
            raise denied("the administrator allows only some email domains, and not this one")
    return email


class SignupRpcs(TopUpRpcs, AdminBase):
    async def _options(self, *keys: str, prefix: str = "") -> dict[str, str]:
        rows = await self._pool.fetch(
            "SELECT key, value FROM options WHERE key = ANY($1::text[])"
            " OR ($2 <> '' AND key LIKE $2 || '%')",
            list(keys),
            prefix,
        )
        return {r["key"]: r["value"] for r in rows}

    async def _email_taken(self, email: str) -> bool:
        return bool(
            await self._pool.fetchval(
                "SELECT 1 FROM users WHERE email <> '' AND lower(email) = $1", email
            )
        )

    async def _throttle_mail(self, email: str, client_ip: str) -> None:
        wait = await self._codes.send_wait(email, client_ip)
        if wait:
            raise Failure(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many mails asked for; try again in {wait} seconds",
            )

    async def _mail(
        self, options: dict[str, str], to: str, subject: str, text: str, body: str
    ) -> None:
        settings = SmtpSettings.from_options(options)
        if settings is None:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this site sends no mail: the administrator has set no SMTP server",
            )
        try:
            await send_mail(settings, to, subject, text, body)
        except MailError as exc:
            log.error("%s", exc)  # the server's words are for the operator, not the visitor
            raise unavailable("the mail could not be sent; try again later") from None

    @public
    async def SendVerificationCode(self, req: admin_pb2.MailCodeRequest) -> Empty:
        options = await self._options(*SIGNUP_OPTIONS, prefix="SMTP")
        email = checked_email(req.email, options)
        await self._throttle_mail(email, req.client_ip)
        if await self._email_taken(email):
            raise Failure(grpc.StatusCode.ALREADY_EXISTS, "that email address is already taken")
        code = new_verification_code()
        await self._codes.issue("verify", email, code)
        name = options.get("SystemName") or "unigate"
        minutes = self._codes.limits.code_ttl_seconds // 60
        text = (
            f"Your {name} verification code is {code}\n\n"
            f"It is valid for {minutes} minutes and works once. If you did not ask for it,"
            " ignore this mail."
        )
        page = (
            f"<p>Your {html.escape(name)} verification code is</p>"
            f'<p style="font-size:24px;font-weight:bold">{code}</p>'
            f"<p>It is valid for {minutes} minutes and works once. If you did not ask for it,"
            " ignore this mail.</p>"
        )
        await self._mail(options, email, f"{name} email verification", text, page)
        return Empty()

    @public
    async def SendPasswordResetMail(self, req: admin_pb2.MailCodeRequest) -> Empty:
        options = await self._options("SystemName", "ServerAddress", prefix="SMTP")
        email = normalize_email(req.email)
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError:
            raise invalid("that is not a valid email address") from None
        await self._throttle_mail(email, req.client_ip)
        server = (options.get("ServerAddress") or "").strip().rstrip("/")
        if not server.startswith(("http://", "https://")):
            # Never the request's Host header: a forged one would mail a link to the attacker.
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                "password reset is not set up: the administrator has set no ServerAddress",
            )
        if not await self._email_taken(email):
            return Empty()  # the same answer as for a registered address (module docstring)
        token = new_reset_token()
        await self._codes.issue("reset", email, token)
        link = f"{server}/#/reset?email={quote(email)}&token={quote(token)}"
        name = options.get("SystemName") or "unigate"
        minutes = self._codes.limits.code_ttl_seconds // 60
        text = (
            f"Someone asked to reset the {name} password of this address. To set a new one,"
            f" open\n\n{link}\n\nwithin {minutes} minutes (it works once). If it was not you,"
            " ignore this mail."
        )
        page = (
            f"<p>Someone asked to reset the {html.escape(name)} password of this address.</p>"
            f'<p><a href="{html.escape(link)}">Reset the password</a></p>'
            f"<p>{html.escape(link)}</p>"
            f"<p>The link works once, within {minutes} minutes. If it was not you, ignore"
            " this mail.</p>"
        )
        await self._mail(options, email, f"{name} password reset", text, page)
        return Empty()

    @public
    async def ResetPasswordByMail(self, req: admin_pb2.MailPasswordReset) -> admin_pb2.NewPassword:
        if not req.email or not req.token:
            raise invalid("email and token are required")
        email = normalize_email(req.email)
        if not await self._codes.consume("reset", email, req.token):
            raise invalid("the reset link is invalid or has expired")
        user_id = await self._pool.fetchval(
            "SELECT id FROM users WHERE email <> '' AND lower(email) = $1", email
        )
        if user_id is None:
            raise invalid("the reset link is invalid or has expired")
        password = secrets.token_urlsafe(12)
        # As any new password: the old sessions and the access token end with the old one.
        await self._pool.execute(
            "UPDATE users SET password_hash = $2, must_change_password = FALSE,"
            " access_token_hash = NULL, updated_time = $3 WHERE id = $1",
            user_id,
            await hash_password(password),
            int(time.time()),
        )
        await self._sessions.end_all(user_id)
        await self._broadcast("user", [user_id])
        return admin_pb2.NewPassword(password=password)

    @public
    async def VerifyTurnstile(self, req: admin_pb2.TurnstileRequest) -> admin_pb2.TurnstileVerdict:
        options = await self._options("TurnstileCheckEnabled", "TurnstileSecretKey")
        if not _on(options, "TurnstileCheckEnabled"):
            return admin_pb2.TurnstileVerdict(required=False, passed=True)
        if not req.token:
            return admin_pb2.TurnstileVerdict(required=True, passed=False)
        try:
            outcome = await siteverify(
                self._turnstile_url,
                options.get("TurnstileSecretKey", ""),
                req.token,
                req.client_ip,
            )
        except TurnstileUnavailable as exc:
            log.error("%s", exc)
            raise unavailable("the Turnstile check could not be made; try again later") from None
        return admin_pb2.TurnstileVerdict(required=True, passed=outcome.passed)

    @rpc(ROLE_USER)
    async def BindEmail(self, caller: Caller, req: admin_pb2.EmailBindRequest) -> admin_pb2.User:
        """One API's email binding: the code mailed to the address (SendVerificationCode)
        proves it is the caller's; spent here, so it binds once."""
        options = await self._options(*SIGNUP_OPTIONS)
        email = checked_email(req.email, options)
        if not req.code or not await self._codes.consume("verify", email, req.code.strip()):
            raise invalid("the verification code is wrong or has expired")
        try:
            await self._pool.execute(
                "UPDATE users SET email = $2, updated_time = $3 WHERE id = $1",
                caller.id,
                email,
                int(time.time()),
            )
        except asyncpg.UniqueViolationError:
            raise Failure(
                grpc.StatusCode.ALREADY_EXISTS, "that email address is bound to another user"
            ) from None
        return await user_message_of(self._pool, caller.id)

    @public
    async def Register(self, req: admin_pb2.RegisterRequest) -> admin_pb2.User:
        options = await self._options(*SIGNUP_OPTIONS, *INVITATION_OPTIONS)
        if not _on(options, "RegisterEnabled"):
            raise denied("registration is turned off (option RegisterEnabled)")
        if not _on(options, "PasswordRegisterEnabled", default=True):
            raise denied("registration with a password is turned off: sign up another way")
        check_username(req.username)
        check_password(req.password)
        if await self._pool.fetchval(
            "SELECT 1 FROM users WHERE lower(username) = lower($1)", req.username
        ):
            raise Failure(grpc.StatusCode.ALREADY_EXISTS, "that username is taken")
        email = ""
        if _on(options, "EmailVerificationEnabled"):
            if not req.email or not req.verification_code:
                raise invalid("email verification is on: give an email address and its code")
            email = checked_email(req.email, options)
            # Spent here, before the account exists: a code never serves twice.
            if not await self._codes.consume("verify", email, req.verification_code.strip()):
                raise invalid("the verification code is wrong or has expired")
        inviter_id = await inviter_of(self._pool, req.aff_code)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                user_id = await create_user(conn, username=req.username, password=req.password)
                await conn.execute(
                    "UPDATE users SET display_name = $2, email = $3, inviter_id = $4 WHERE id = $1",
                    user_id,
                    (req.display_name or req.username).strip()[:64] or req.username,
                    email,
                    inviter_id,
                )
                await assign_aff_code(conn, user_id)
                rewarded = await reward_signup(conn, user_id, inviter_id, options)
        except asyncpg.UniqueViolationError:
            raise Failure(
                grpc.StatusCode.ALREADY_EXISTS, "that username or email address is taken"
            ) from None
        except ValueError as exc:  # create_user's: a name taken meanwhile
            raise Failure(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        if rewarded:
            await self._forget_balance(*rewarded)
            await self._broadcast("user", rewarded)
        return await user_message_of(self._pool, user_id)
