"""Self-service accounts over the real stack: sign-up with a code mailed to a real SMTP
server (tests/smtp_inbox.py), codes single-use, short-lived and rate-limited, password reset
by the mailed link, Turnstile against its strict simulator, invitation rewards and admin
top-ups each in the ledger exactly once. Every refusal is One API's envelope (``Api`` checks
the shape of every answer), never a 500."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from tests.e2e.conftest import TURNSTILE_SECRET, ThreadedServer
from tests.e2e.test_management_api import Api, unique
from tests.e2e.test_management_api import apis as apis
from tests.e2e.test_management_api import root as root
from tests.smtp_inbox import Inbox, smtp_inbox
from unigate_cli.devstack import Stack
from unigate_sim.turnstile import TurnstileState

PASSWORD = "pw-" + "s" * 12
_ips = iter(range(1, 250))

SetOptions = Callable[[dict[str, Any]], Awaitable[None]]


def new_ip() -> str:
    """A client address of its own (loopback is a trusted proxy: X-Forwarded-For is
    believed), so that the per-address mail limits of one test do not meet another's."""
    return f"198.51.100.{next(_ips)}"


def client(stack: Stack, apis: list[Api]) -> Api:
    api = Api(stack, ip=new_ip())
    apis.append(api)
    return api


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with smtp_inbox() as box:
        yield box


@pytest.fixture
async def options(pg: asyncpg.Pool) -> AsyncIterator[SetOptions]:
    """Set options for one test; the previous values come back afterwards."""
    before: dict[str, str | None] = {}

    async def set_options(values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in before:
                before[key] = await pg.fetchval("SELECT value FROM options WHERE key = $1", key)
            text = str(value).lower() if isinstance(value, bool) else str(value)
            await pg.execute(
                "INSERT INTO options (key, value) VALUES ($1, $2)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                key,
                text,
            )

    yield set_options
    for key, value in before.items():
        if value is None:
            await pg.execute("DELETE FROM options WHERE key = $1", key)
        else:
            await pg.execute("UPDATE options SET value = $2 WHERE key = $1", key, value)


@pytest.fixture
async def signup(options: SetOptions, inbox: Inbox) -> None:
    """Registration open, with email verification, through the test's SMTP server."""
    await options({**inbox.options(), "RegisterEnabled": True, "EmailVerificationEnabled": True})


def mails_to(inbox: Inbox, to: str) -> list[EmailMessage]:
    return [m for m in list(inbox.messages) if to.lower() in str(m["To"]).lower()]


async def next_mail(inbox: Inbox, to: str, seen: int) -> EmailMessage:
    """The (seen+1)-th mail to ``to``, waiting for it."""
    for _ in range(300):
        mails = mails_to(inbox, to)
        if len(mails) > seen:
            return mails[seen]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail #{seen + 1} to {to}")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def code_in(message: EmailMessage) -> str:
    found = re.search(r"\b(\d{6})\b", text_of(message))
    assert found, text_of(message)
    return found.group(1)


def link_in(message: EmailMessage) -> str:
    found = re.search(r"(https?://\S+/#/reset\?\S+)", text_of(message))
    assert found, text_of(message)
    return found.group(1)


def refusal(response: httpx.Response, words: str = "") -> str:
    """One API's refusal: HTTP 200, ``success`` false and a message (containing ``words``)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is False and body["message"], body
    assert words in body["message"], body["message"]
    message: str = body["message"]
    return message


def logged_in(response: httpx.Response) -> bool:
    """A login's success is read from the envelope: a refused one is a 200 too."""
    return response.status_code == 200 and response.json()["success"] is True


async def ledger_topups(pg: asyncpg.Pool, user_id: int) -> list[int]:
    return [
        r["quota"]
        for r in await pg.fetch(
            "SELECT quota FROM logs WHERE type = 1 AND user_id = $1 ORDER BY id", user_id
        )
    ]


async def user_row(pg: asyncpg.Pool, username: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pg.fetchrow(
        "SELECT id, email, quota, inviter_id, aff_code FROM users WHERE username = $1", username
    )
    return row


async def verified_signup(
    api: Api, inbox: Inbox, *, email: str | None = None, **extra: Any
) -> tuple[str, str]:
    """Ask for a code, read it from the mail, register with it: (username, email)."""
    email = email or f"{unique('person')}@example.com"
    seen = len(mails_to(inbox, email))
    await api.ok("GET", "/verification", params={"email": email})
    code = code_in(await next_mail(inbox, email, seen))
    name = unique("signup")
    body = {"username": name, "password": PASSWORD, "email": email, "verification_code": code}
    await api.ok("POST", "/user/register", json={**body, **extra})
    return name, email


# ---- sign-up by mailed code ----------------------------------------------------------------


async def test_a_mailed_code_signs_up_once_and_is_stored_only_hashed(
    stack: Stack, apis: list[Api], signup: None, inbox: Inbox, pg: asyncpg.Pool, redis: Redis
) -> None:
    api = client(stack, apis)
    email = f"{unique('first')}@Example.com"
    await api.ok("GET", "/verification", params={"email": email})
    mail = await next_mail(inbox, email, 0)
    code = code_in(mail)
    assert "verification" in str(mail["Subject"]).lower()
    # Nothing in Redis holds the code itself.
    for key in [k async for k in redis.scan_iter(match="*mail-code:verify:*")]:
        assert code not in str(await redis.hgetall(key))

    name = unique("coded")
    body = {"username": name, "password": PASSWORD, "email": email}
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    for bad in ({}, {"verification_code": wrong}):
        refused = await api.raw("POST", "/user/register", json={**body, **bad})
        refusal(refused)
    assert await user_row(pg, name) is None

    made = await api.ok("POST", "/user/register", json={**body, "verification_code": code})
    assert made["username"] == name and made["email"] == email.lower()
    assert len(made["aff_code"]) == 8
    # The same code again, for another name: spent.
    again = await api.raw(
        "POST",
        "/user/register",
        json={**body, "username": unique("twice"), "verification_code": code},
    )
    refusal(again, "wrong or has expired")
    # The address is now taken: no second code is mailed for it.
    taken = await api.raw("GET", "/verification", params={"email": email.upper()})
    refusal(taken)
    assert len(mails_to(inbox, email)) == 1
    assert logged_in(await api.login(name, PASSWORD))


async def test_an_expired_or_guessed_code_is_refused(
    stack: Stack, apis: list[Api], signup: None, inbox: Inbox, pg: asyncpg.Pool, redis: Redis
) -> None:
    api = client(stack, apis)
    email = f"{unique('late')}@example.com"
    before = {k async for k in redis.scan_iter(match="*mail-code:verify:*")}
    await api.ok("GET", "/verification", params={"email": email})
    code = code_in(await next_mail(inbox, email, 0))
    [key] = {k async for k in redis.scan_iter(match="*mail-code:verify:*")} - before
    await redis.pexpire(key, 1)  # its life is over
    await asyncio.sleep(0.05)
    name = unique("late")
    body = {"username": name, "password": PASSWORD, "email": email, "verification_code": code}
    refusal(await api.raw("POST", "/user/register", json=body), "wrong or has expired")
    assert await user_row(pg, name) is None

    # Five wrong guesses kill a live code: the right one is refused after them.
    await api.ok("GET", "/verification", params={"email": email})
    code = code_in(await next_mail(inbox, email, 1))
    guesses = [f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" != code][:5]
    for guess in guesses:
        r = await api.raw("POST", "/user/register", json={**body, "verification_code": guess})
        refusal(r)
    r = await api.raw("POST", "/user/register", json={**body, "verification_code": code})
    refusal(r, "wrong or has expired")
    assert await user_row(pg, name) is None


async def test_mails_are_rate_limited_per_address_and_per_client(
    stack: Stack, apis: list[Api], signup: None, inbox: Inbox
) -> None:
    email = f"{unique('flood')}@example.com"
    # Per address: three, whoever asks; the fourth is refused and not sent.
    for _ in range(3):
        await client(stack, apis).ok("GET", "/verification", params={"email": email})
    refused = await client(stack, apis).raw("GET", "/verification", params={"email": email})
    assert refused.status_code == 429 and "try again in" in refused.json()["message"]
    await next_mail(inbox, email, 2)
    await asyncio.sleep(0.5)
    assert len(mails_to(inbox, email)) == 3
    # Per client: ten, to any addresses; the eleventh is refused.
    api = client(stack, apis)
    for _ in range(10):
        await api.ok("GET", "/verification", params={"email": f"{unique('many')}@example.com"})
    last = f"{unique('many')}@example.com"
    assert (await api.raw("GET", "/verification", params={"email": last})).status_code == 429
    assert mails_to(inbox, last) == []


async def test_registration_options_and_domains_are_enforced(
    stack: Stack, apis: list[Api], options: SetOptions, inbox: Inbox, pg: asyncpg.Pool
) -> None:
    api = client(stack, apis)
    await options({**inbox.options(), "RegisterEnabled": True, "EmailVerificationEnabled": True})
    await options(
        {"EmailDomainRestrictionEnabled": True, "EmailDomainWhitelist": "good.example,fine.example"}
    )
    elsewhere = f"{unique('out')}@bad.example"
    r = await api.raw("GET", "/verification", params={"email": elsewhere})
    refusal(r, "domain")
    refusal(await api.raw("GET", "/verification", params={"email": "not-an-address"}))
    assert mails_to(inbox, elsewhere) == []
    name, _ = await verified_signup(api, inbox, email=f"{unique('in')}@fine.example")
    assert (await user_row(pg, name)) is not None

    await options({"PasswordRegisterEnabled": False})
    body = {"username": unique("nopw"), "password": PASSWORD}
    refusal(await api.raw("POST", "/user/register", json=body))
    assert await user_row(pg, body["username"]) is None
    await options({"PasswordRegisterEnabled": True, "RegisterEnabled": False})
    refusal(await api.raw("POST", "/user/register", json=body))
    assert await user_row(pg, body["username"]) is None


async def test_no_smtp_server_is_a_clear_refusal(
    stack: Stack, apis: list[Api], options: SetOptions
) -> None:
    await options({"SMTPServer": "", "RegisterEnabled": True})
    r = await client(stack, apis).raw(
        "GET", "/verification", params={"email": f"{unique('x')}@example.com"}
    )
    refusal(r, "SMTP")


async def test_a_mailed_code_binds_the_callers_email_once(
    stack: Stack, apis: list[Api], signup: None, inbox: Inbox, pg: asyncpg.Pool
) -> None:
    api = client(stack, apis)
    name, _ = await verified_signup(api, inbox)
    assert logged_in(await api.login(name, PASSWORD))
    email = f"{unique('bind')}@Example.com"
    await api.ok("GET", "/verification", params={"email": email})
    code = code_in(await next_mail(inbox, email, 0))
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    # Without a login: One API's 401.
    anonymous = client(stack, apis)
    r = await anonymous.raw("GET", "/oauth/email/bind", params={"email": email, "code": code})
    assert r.status_code == 401
    refusal(
        await api.raw("GET", "/oauth/email/bind", params={"email": email, "code": wrong}),
        "wrong or has expired",
    )
    me = await api.ok("GET", "/oauth/email/bind", params={"email": email, "code": code})
    assert me["email"] == email.lower()
    assert await pg.fetchval("SELECT email FROM users WHERE username = $1", name) == email.lower()
    # Spent: the same code binds nothing for another user.
    other = client(stack, apis)
    other_name, other_email = await verified_signup(other, inbox)
    assert logged_in(await other.login(other_name, PASSWORD))
    refusal(
        await other.raw("GET", "/oauth/email/bind", params={"email": email, "code": code}),
        "wrong or has expired",
    )
    assert await pg.fetchval("SELECT email FROM users WHERE username = $1", other_name) == (
        other_email.lower()
    )


# ---- password reset by mailed link --------------------------------------------------------


async def test_a_mailed_link_resets_the_password_once_and_ends_old_sessions(
    stack: Stack, apis: list[Api], signup: None, options: SetOptions, inbox: Inbox
) -> None:
    await options({"ServerAddress": stack.gateway_url})
    api = client(stack, apis)
    name, email = await verified_signup(api, inbox)
    old = client(stack, apis)
    assert logged_in(await old.login(name, PASSWORD))
    token = await old.ok("GET", "/user/token")

    # An unknown address answers alike, and nothing is mailed.
    nobody = f"{unique('nobody')}@example.com"
    await api.ok("GET", "/reset_password", params={"email": nobody})
    await api.ok("GET", "/reset_password", params={"email": email})
    link = link_in(await next_mail(inbox, email, 1))
    assert link.startswith(stack.gateway_url + "/#/reset?")
    assert mails_to(inbox, nobody) == []
    query = parse_qs(urlsplit(link).fragment.split("?", 1)[1])
    body = {"email": query["email"][0], "token": query["token"][0]}

    wrong = await api.raw("POST", "/user/reset", json={**body, "token": "x" + body["token"]})
    refusal(wrong)
    new_password = await api.ok("POST", "/user/reset", json=body)
    assert isinstance(new_password, str) and len(new_password) >= 12
    again = await api.raw("POST", "/user/reset", json=body)
    refusal(again, "invalid or has expired")

    # The old session and the old access token end; the old password no longer logs in.
    # An ended session is One API's 401; a token that is no longer valid is a refusal at 200.
    assert (await old.raw("GET", "/user/self")).status_code == 401
    bearer = await api.raw("GET", "/user/self", headers={"Authorization": f"Bearer {token}"})
    refusal(bearer, "not logged in")
    fresh = client(stack, apis)
    refusal(await fresh.login(name, PASSWORD))
    assert logged_in(await fresh.login(name, new_password))


async def test_reset_needs_the_server_address(
    stack: Stack, apis: list[Api], options: SetOptions, inbox: Inbox
) -> None:
    await options({**inbox.options(), "ServerAddress": ""})
    r = await client(stack, apis).raw(
        "GET", "/reset_password", params={"email": f"{unique('r')}@example.com"}
    )
    refusal(r, "ServerAddress")


# ---- Turnstile ----------------------------------------------------------------------------


@pytest.fixture
def turnstile(turnstile_sim: ThreadedServer) -> TurnstileState:
    state: TurnstileState = turnstile_sim.server.config.app.state.turnstile
    state.checks.clear()
    return state


async def test_turnstile_guards_register_and_login(
    stack: Stack,
    apis: list[Api],
    options: SetOptions,
    turnstile: TurnstileState,
    pg: asyncpg.Pool,
) -> None:
    await options(
        {
            "RegisterEnabled": True,
            "EmailVerificationEnabled": False,
            "TurnstileCheckEnabled": True,
            "TurnstileSiteKey": "0x4AAAAAAA-site-key",
            "TurnstileSecretKey": TURNSTILE_SECRET,
        }
    )
    status = await client(stack, apis).ok("GET", "/status")
    assert status["turnstile_check"] is True
    assert status["turnstile_site_key"] == "0x4AAAAAAA-site-key"

    name = unique("human")
    body = {"username": name, "password": PASSWORD}
    bot = client(stack, apis)
    empty = await bot.raw("POST", "/user/register", json=body)
    refusal(empty, "empty")
    forged = await bot.raw("POST", "/user/register", json=body, params={"turnstile": "0.forged"})
    refusal(forged)
    stale = turnstile.issue(age=400)  # solved more than 300 s ago
    late = await bot.raw("POST", "/user/register", json=body, params={"turnstile": stale})
    refusal(late)
    assert await user_row(pg, name) is None

    person = client(stack, apis)
    token = turnstile.issue()
    await person.ok("POST", "/user/register", json=body, params={"turnstile": token})
    assert turnstile.checks[-1]["secret"] == TURNSTILE_SECRET
    assert turnstile.checks[-1]["response"] == token
    assert turnstile.checks[-1]["remoteip"].startswith("198.51.100.")
    # The same token from another session: spent (timeout-or-duplicate).
    replay = client(stack, apis)
    other = {"username": unique("replay"), "password": PASSWORD}
    r = await replay.raw("POST", "/user/register", json=other, params={"turnstile": token})
    refusal(r)
    assert await user_row(pg, other["username"]) is None

    # Logging in is guarded too.
    guest = client(stack, apis)
    refusal(await guest.login(name, PASSWORD))
    assert guest.csrf == ""
    r = await guest.http.post(
        "/user/login",
        json={"username": name, "password": PASSWORD},
        params={"turnstile": turnstile.issue()},
    )
    assert logged_in(r), r.text


async def test_a_wrong_turnstile_secret_fails_closed(
    stack: Stack,
    apis: list[Api],
    options: SetOptions,
    turnstile: TurnstileState,
    pg: asyncpg.Pool,
) -> None:
    await options(
        {"RegisterEnabled": True, "TurnstileCheckEnabled": True, "TurnstileSecretKey": "wrong"}
    )
    body = {"username": unique("closed"), "password": PASSWORD}
    r = await client(stack, apis).raw(
        "POST", "/user/register", json=body, params={"turnstile": turnstile.issue()}
    )
    refusal(r)
    assert await user_row(pg, body["username"]) is None


# ---- invitations and top-ups --------------------------------------------------------------


async def test_invitation_rewards_are_in_the_ledger_exactly_once(
    stack: Stack, apis: list[Api], options: SetOptions, pg: asyncpg.Pool
) -> None:
    await options(
        {
            "RegisterEnabled": True,
            "EmailVerificationEnabled": False,
            "QuotaForNewUser": 1000,
            "QuotaForInvitee": 2000,
            "QuotaForInviter": 3000,
        }
    )
    inviter_api = client(stack, apis)
    inviter_name = unique("inviter")
    await inviter_api.ok(
        "POST", "/user/register", json={"username": inviter_name, "password": PASSWORD}
    )
    assert logged_in(await inviter_api.login(inviter_name, PASSWORD))
    aff = await inviter_api.ok("GET", "/user/aff")
    assert aff == await inviter_api.ok("GET", "/user/aff")  # the same code each time
    inviter = await user_row(pg, inviter_name)
    assert inviter is not None and inviter["aff_code"] == aff
    assert await ledger_topups(pg, inviter["id"]) == [1000]

    # The invitee's sign-up, sent five times at once (a retrying client): one account, and
    # each reward once.
    name = unique("invitee")
    body = {"username": name, "password": PASSWORD, "aff_code": aff.lower()}
    answers = await asyncio.gather(
        *(client(stack, apis).raw("POST", "/user/register", json=body) for _ in range(5))
    )
    # One API answers a taken username with 200 and success false: exactly one succeeds.
    assert [a.status_code for a in answers] == [200] * 5
    assert sorted(a.json()["success"] for a in answers) == [False, False, False, False, True]
    for answer in answers:
        if not answer.json()["success"]:
            refusal(answer)
    invitee = await user_row(pg, name)
    assert invitee is not None and invitee["inviter_id"] == inviter["id"]
    assert await ledger_topups(pg, invitee["id"]) == [1000, 2000]
    assert invitee["quota"] == 3000
    assert await ledger_topups(pg, inviter["id"]) == [1000, 3000]
    inviter = await user_row(pg, inviter_name)
    assert inviter is not None and inviter["quota"] == 4000
    # An unknown code invites nobody (as One API), and rewards nobody.
    loner = unique("loner")
    await client(stack, apis).ok(
        "POST", "/user/register", json={"username": loner, "password": PASSWORD, "aff_code": "NOPE"}
    )
    row = await user_row(pg, loner)
    assert row is not None and row["inviter_id"] == 0
    assert await ledger_topups(pg, row["id"]) == [1000]


async def test_aff_is_not_taken_for_a_user_id(stack: Stack, apis: list[Api]) -> None:
    r = await client(stack, apis).raw("GET", "/user/aff")
    assert r.status_code == 401


async def test_admin_top_up_writes_one_ledger_row(
    stack: Stack, root: Api, apis: list[Api], options: SetOptions, pg: asyncpg.Pool
) -> None:
    await options(
        {"RegisterEnabled": True, "EmailVerificationEnabled": False, "QuotaForNewUser": 0}
    )
    name = unique("funded")
    user = client(stack, apis)
    made = await user.ok("POST", "/user/register", json={"username": name, "password": PASSWORD})
    change = await root.ok(
        "POST", "/topup", json={"user_id": made["id"], "quota": 5000, "remark": "invoice 42"}
    )
    assert change["after"] - change["before"] == 5000
    rows = await pg.fetch(
        "SELECT quota, content FROM logs WHERE type = 1 AND user_id = $1", made["id"]
    )
    assert [(r["quota"], r["content"]) for r in rows] == [(5000, "invoice 42")]
    assert (await user_row(pg, name))["quota"] == 5000  # type: ignore[index]
    for bad in (
        {"user_id": made["id"], "quota": 0},
        {"user_id": made["id"], "quota": -5},
        {"user_id": 987654321, "quota": 5},
        {"user_id": made["id"]},
    ):
        refusal(await root.raw("POST", "/topup", json=bad))
    assert logged_in(await user.login(name, PASSWORD))
    refusal(await user.raw("POST", "/topup", json={"user_id": made["id"], "quota": 5}))
    assert len(await ledger_topups(pg, made["id"])) == 1


async def test_status_reports_what_one_apis_front_end_reads(
    stack: Stack, apis: list[Api], options: SetOptions
) -> None:
    await options(
        {
            "EmailVerificationEnabled": True,
            "TopUpLink": "https://shop.example.com/buy",
            "RegisterEnabled": True,
            "TurnstileCheckEnabled": False,
        }
    )
    status = await client(stack, apis).ok("GET", "/status")
    assert status["email_verification"] is True
    assert status["top_up_link"] == "https://shop.example.com/buy"
    assert status["register_enabled"] is True and status["password_register_enabled"] is True
    assert status["turnstile_check"] is False
    assert "secret" not in str(status).lower()


async def test_credentials_are_never_read_back_but_the_site_key_is(
    root: Api, options: SetOptions, inbox: Inbox
) -> None:
    await options(
        {
            **inbox.options(),
            "TurnstileSiteKey": "0x4AAAAAAA-public",
            "TurnstileSecretKey": TURNSTILE_SECRET,
        }
    )
    listed = {o["key"]: o["value"] for o in await root.ok("GET", "/option/")}
    assert listed["TurnstileSiteKey"] == "0x4AAAAAAA-public"
    assert listed["SMTPServer"] == inbox.host
    assert "TurnstileSecretKey" not in listed and "SMTPToken" not in listed
    assert TURNSTILE_SECRET not in str(listed) and inbox.password not in str(listed)
