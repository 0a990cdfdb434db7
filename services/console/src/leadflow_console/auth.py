"""Console users, their sessions, roles and CSRF protection.

* Passwords are argon2id hashes (argon2-cffi), re-hashed on sign-in when the parameters change.
* A session is a random token: the cookie carries it signed (itsdangerous, with the issue time), the
  database only its SHA-256, so a copy of the table signs nobody in and signing out or disabling a
  user ends the session at once. Cookie: HttpOnly, SameSite=Lax, Secure outside development.
* Every unsafe request (POST, PUT, PATCH, DELETE) must carry the CSRF token (form field ``csrf_token``
  or header ``X-CSRF-Token``): an HMAC of the session token, or of the pre-session cookie before
  sign-in, so a page of another site can neither read nor forge it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, Response, status
from itsdangerous import BadSignature, URLSafeTimedSerializer

from leadflow_console import store
from leadflow_console.deps import Console, ConsoleDep, request_console

Role = Literal["admin", "marketing_ops", "sales_manager", "rep"]
ROLES: tuple[Role, ...] = get_args(Role)
ROLE_LABELS: Mapping[str, str] = {
    "admin": "Admin",
    "marketing_ops": "Marketing ops",
    "sales_manager": "Sales manager",
    "rep": "Sales rep",
}

SESSION_COOKIE = "console_session"
PRESESSION_COOKIE = "console_presession"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# The admin `seed-demo` creates while the console has none (`make up`, a deployment's first start).
FIRST_ADMIN = "admin"
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a guess at a name costs as long as one at a password.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    id: str
    username: str
    display_name: str
    role: Role
    # A rep user acts for this routing rep; a sales manager for these routing teams.
    rep_id: str | None = None
    team_ids: tuple[str, ...] = ()

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    def has_role(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles

    def manages_team(self, team_id: str | None) -> bool:
        """Whether the user manages ``team_id``'s people and SLA policies: an admin every team (and what belongs
        to none), a sales manager the teams their user is linked to."""
        return self.role == "admin" or (self.role == "sales_manager" and team_id in self.team_ids)

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(id=row.id, username=row.username, display_name=row.display_name, role=row.role,
                   rep_id=row.rep_id, team_ids=tuple(row.team_ids or ()))


# -- passwords ------------------------------------------------------------------------------


# argon2id costs tens of milliseconds of CPU by design. argon2-cffi releases the GIL while it hashes, so in
# a worker thread it leaves the event loop free: on it, every sign-in stalled every other page of the
# console (and its health check) for that long.


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verified(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(_verified, password_hash, password)


def password_problem(password: str) -> str | None:
    """Why ``password`` is refused for a console user, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 1024:
        return "the password must be at most 1024 characters"
    return None


async def create_user(db: Any, *, username: str, password: str, role: Role, display_name: str | None = None,
                      rep_id: str | None = None, team_ids: tuple[str, ...] = ()) -> User:
    user = User(id=str(uuid.uuid4()), username=username.lower(), display_name=display_name or username,
                role=role, rep_id=rep_id, team_ids=team_ids)
    await store.insert_user(db, id=user.id, username=user.username, display_name=user.display_name,
                            password_hash=await hash_password(password), role=role, rep_id=rep_id,
                            team_ids=list(team_ids))
    return user


# -- signing in -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignInRefused:
    """What the sign-in page says; the same for an unknown user and a wrong password."""

    message: str


WRONG_CREDENTIALS = SignInRefused("The username or password is not right.")


async def sign_in(console: Console, username: str, password: str) -> User | SignInRefused:
    """The user, or why not: wrong credentials, a disabled user, or one locked after repeated failures."""
    settings = console.settings
    now = console.clock.now()
    row = await store.user_by_username(console.db, username.strip().lower())
    if row is None:
        await verify_password(_UNKNOWN_USER_HASH, password)
        return WRONG_CREDENTIALS
    if row.locked_until is not None and row.locked_until > now:
        minutes = max(1, round((row.locked_until - now).total_seconds() / 60))
        return SignInRefused(f"Too many failed sign-ins: this account is locked; try again in {minutes} min.")
    if not await verify_password(row.password_hash, password):
        await store.record_failed_sign_in(console.db, row.id, settings.sign_in_max_failures,
                                          now + timedelta(seconds=settings.sign_in_lockout_seconds))
        return WRONG_CREDENTIALS
    if row.disabled_at is not None:
        return SignInRefused("This account is disabled; ask an admin.")
    changes: dict[str, Any] = {"failed_sign_ins": 0, "locked_until": None}
    if _hasher.check_needs_rehash(row.password_hash):
        changes["password_hash"] = await hash_password(password)
    await store.update_user(console.db, row.id, **changes)
    return User.from_row(row)


# -- sessions -------------------------------------------------------------------------------


def _serializer(console: Console) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(console.settings.signing_key(), salt="leadflow-console-session")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(console: Console, response: Response, user: User) -> str:
    """Store a new session for ``user`` and set its cookie on ``response``; returns the token."""
    token = secrets.token_urlsafe(32)
    max_age = console.settings.session_max_age_seconds
    # Sessions end by expiring too; sign-ins are rare enough to sweep the expired ones.
    await store.delete_expired_sessions(console.db, console.clock.now())
    await store.insert_session(console.db, token_hash(token), user.id, console.clock.now() + timedelta(seconds=max_age))
    response.set_cookie(SESSION_COOKIE, _serializer(console).dumps(token), max_age=max_age, httponly=True,
                        samesite="lax", secure=console.settings.secure_cookies, path="/")
    response.delete_cookie(PRESESSION_COOKIE, path="/")
    return token


def session_token(console: Console, request: Request) -> str | None:
    """The request's session token when its cookie is present, signed by us and not too old."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        token = _serializer(console).loads(raw, max_age=console.settings.session_max_age_seconds)
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


async def end_session(console: Console, request: Request, response: Response) -> None:
    token = session_token(console, request)
    if token is not None:
        await store.delete_session(console.db, token_hash(token))
    response.delete_cookie(SESSION_COOKIE, path="/")


async def current_user(request: Request) -> User | None:
    """The signed-in, enabled user of this request (looked up once per request), or None."""
    if hasattr(request.state, "user"):
        user: User | None = request.state.user
        return user
    console = request_console(request)
    token = session_token(console, request)
    user = None
    if token is not None:
        row = await store.session_user(console.db, token_hash(token), console.clock.now())
        if row is not None and row.disabled_at is None:
            user = User.from_row(row)
    request.state.user = user
    return user


CurrentUser = Annotated[User | None, Depends(current_user)]


class SignInRequired(Exception):
    """A signed-out request for a page: the app redirects it to the sign-in page."""


class RoleRequired(HTTPException):
    def __init__(self, roles: tuple[str, ...]) -> None:
        names = ", ".join(ROLE_LABELS[r] for r in dict.fromkeys(("admin", *roles)) if r in ROLE_LABELS)
        super().__init__(status.HTTP_403_FORBIDDEN, detail=f"This page is for: {names}.")


def require_roles(*roles: Role) -> Callable[[Request], Awaitable[User]]:
    """A page's dependency: the signed-in user when their role is one of ``roles`` (admin always is);
    signed out, a redirect to sign-in; another role, a 403 page. No roles: any signed-in user."""

    async def dependency(request: Request) -> User:
        user = await current_user(request)
        if user is None:
            raise SignInRequired()
        if roles and not user.has_role(*roles):
            raise RoleRequired(roles)
        return user

    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


SignedIn = Annotated[User, Depends(require_roles())]


# -- CSRF -----------------------------------------------------------------------------------


def csrf_token(console: Console, request: Request) -> str:
    """The token forms and htmx requests of this page must send back. Before sign-in it is bound to the
    pre-session cookie (``presession_to_set``)."""
    binding = session_token(console, request) or request.cookies.get(PRESESSION_COOKIE) or ""
    if not binding:
        binding = getattr(request.state, "presession", "")
    digest = hmac.new(console.settings.signing_key().encode(), f"csrf:{binding}".encode(), hashlib.sha256)
    return digest.hexdigest()


def presession_to_set(console: Console, request: Request) -> str | None:
    """A new pre-session value for a signed-out browser that has none (the page's CSRF token is bound to
    it from now on; the caller sets it as the ``PRESESSION_COOKIE``), else None."""
    if request.cookies.get(PRESESSION_COOKIE) or session_token(console, request):
        return None
    if not getattr(request.state, "presession", None):
        request.state.presession = secrets.token_urlsafe(32)
    value: str = request.state.presession
    return value


def set_presession_cookie(console: Console, response: Response, value: str) -> None:
    response.set_cookie(PRESESSION_COOKIE, value, httponly=True, samesite="lax",
                        secure=console.settings.secure_cookies, path="/")


class CsrfRefused(HTTPException):
    def __init__(self) -> None:
        super().__init__(status.HTTP_403_FORBIDDEN,
                         detail="The form had expired or did not come from this console (CSRF token missing or "
                                "wrong). Reload the page and try again.")


async def verify_csrf(request: Request, console: ConsoleDep) -> None:
    """Every router's dependency: an unsafe request without the right token is refused with 403."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    presession_bound = request.cookies.get(PRESESSION_COOKIE) is not None or session_token(console, request)
    if not sent or not presession_bound or not hmac.compare_digest(sent, csrf_token(console, request)):
        raise CsrfRefused()


# -- data scoping ---------------------------------------------------------------------------


def lead_owner(lead: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(rep id, team id, queue) of a lead as sla's search shows it (``owner``, ``team``, ``queue``) or as
    routing's assignment does (``owner: {rep_id, team_id}``, ``team_id``, ``queue``)."""
    owner = lead.get("owner")
    rep_id = owner.get("rep_id") if isinstance(owner, Mapping) else owner
    team_id = lead.get("team_id") or lead.get("team") or (owner.get("team_id") if isinstance(owner, Mapping) else None)
    queue = lead.get("queue")
    return (str(rep_id) if rep_id else None, str(team_id) if team_id else None, str(queue) if queue else None)


def lead_visible_to(user: User, lead: Mapping[str, Any]) -> bool:
    """May ``user`` see ``lead`` (see ``lead_owner`` for the shapes)? Every leads page asks this before
    it shows a lead (a 404 when not). Admins and marketing ops see every lead; a sales manager the leads
    of their teams and those waiting in a queue with no rep (they work the queues); a rep only the leads
    they own."""
    if user.role in ("admin", "marketing_ops"):
        return True
    rep_id, team_id, queue = lead_owner(lead)
    if user.role == "rep":
        return user.rep_id is not None and rep_id == user.rep_id
    return (team_id is not None and team_id in user.team_ids) or (rep_id is None and queue is not None)
