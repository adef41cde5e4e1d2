"""Who may call what: deny by default, roles per clinic, sessions bound to one clinic.

Every view declares its access with :func:`public`, :func:`operator_only` or
:func:`requires`; a view that declares nothing is refused. The guard runs
before every request: it finds the clinic from the URL, enters its scope,
authenticates the caller (session cookie or bearer token) and checks the
permission. A caller with no standing at the clinic gets 404, so a URL never
tells a stranger that a clinic or a record exists.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, current_app, g, request, session
from flask_login import current_user, logout_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm.attributes import set_committed_value

from core import clock
from core.accounts import throttle
from core.accounts.models import ApiToken, Membership, Role, User
from core.accounts.services import membership_of, staff_token_for_secret, token_digest
from core.errors import Problem
from core.extensions import db, login_manager
from core.tenancy import kept
from core.tenancy.models import Clinic, ClinicStatus
from core.tenancy.scope import (
    ClinicRef,
    enter_clinic,
    leave_clinic,
    require_clinic_ref,
    scope_in_same_statement,
)
from core.unit_of_work import unit_of_work

F = TypeVar("F", bound=Callable[..., Any])

CLINIC_ARG = "clinic_slug"


class Permission(enum.StrEnum):
    """Something a staff member may do at their clinic."""

    view_clinic = "view_clinic"
    edit_clinic = "edit_clinic"
    view_staff = "view_staff"
    manage_staff = "manage_staff"
    manage_tokens = "manage_tokens"
    view_plugins = "view_plugins"
    view_clients = "view_clients"
    edit_clients = "edit_clients"
    view_health = "view_health"
    edit_health = "edit_health"
    view_audit = "view_audit"
    review_emergency_access = "review_emergency_access"
    view_bookings = "view_bookings"
    manage_bookings = "manage_bookings"
    edit_catalog = "edit_catalog"
    manage_schedules = "manage_schedules"
    manage_privacy = "manage_privacy"
    send_marketing = "send_marketing"
    take_payments = "take_payments"
    approve_refunds = "approve_refunds"
    manage_webhooks = "manage_webhooks"
    answer_disputes = "answer_disputes"
    view_reports = "view_reports"


_ALL = frozenset(Role)
_LEADS = frozenset({Role.owner, Role.manager})
_CLINICAL = frozenset({Role.owner, Role.manager, Role.provider})

#: Which roles hold each permission. Front desk sees contact and booking data
#: but never health data, notes or photos (HIPAA minimum necessary).
GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.view_clients: _ALL,
    Permission.edit_clients: _ALL,
    Permission.view_health: _CLINICAL,
    Permission.edit_health: _CLINICAL,
    Permission.view_audit: _LEADS,
    Permission.review_emergency_access: _LEADS,
    Permission.view_bookings: _ALL,
    Permission.manage_bookings: _ALL,
    Permission.edit_catalog: _LEADS,
    Permission.manage_schedules: _LEADS,
    # Privacy requests release and delete health data; breaches and
    # recipients are the clinic's legal duties: owners and managers.
    Permission.manage_privacy: _LEADS,
    Permission.send_marketing: _LEADS,
    # The front desk checks clients out; a refund, store credit or exchange is
    # management's to approve where the policy says so.
    Permission.take_payments: _ALL,
    Permission.approve_refunds: _LEADS,
    # A dispute's evidence names the client and speaks for the clinic to the card network.
    Permission.answer_disputes: _LEADS,
    # The clinic's takings, fees and utilisation by provider are the business's own.
    Permission.view_reports: _LEADS,
    Permission.view_clinic: _ALL,
    Permission.edit_clinic: _LEADS,
    Permission.view_staff: _LEADS,
    Permission.manage_staff: _LEADS,
    Permission.manage_tokens: _LEADS,
    Permission.view_plugins: _LEADS,
    # Webhook endpoints send clients' contact details to systems outside the platform.
    Permission.manage_webhooks: _LEADS,
}


def role_may(role: Role, permission: Permission) -> bool:
    """Return whether ``role`` holds ``permission``."""
    return role in GRANTS.get(permission, frozenset())


@dataclass(frozen=True)
class Principal:
    """The caller of a request: a user, how they signed in, and their place at the clinic."""

    user: User
    via: str  # "session" or "token"
    membership: Membership | None = None
    token: ApiToken | None = None


# --- declarations ------------------------------------------------------------

_ACCESS_ATTR = "_clinic_saas_access"


def public(view: F) -> F:
    """Let anyone call ``view``, signed in or not, at a clinic open for business (its menu, booking)."""
    setattr(view, _ACCESS_ATTR, ("public",))
    return view


def public_while_closed(view: F) -> F:
    """Let anyone call ``view`` even at a clinic not open to clients: staff signing in to set it up."""
    setattr(view, _ACCESS_ATTR, ("public", "while_closed"))
    return view


def operator_only(view: F) -> F:
    """Let only the platform operator call ``view``."""
    setattr(view, _ACCESS_ATTR, ("operator",))
    return view


def requires(permission: Permission | None = None) -> Callable[[F], F]:
    """Let staff of the URL's clinic call ``view``; with ``permission``, only roles holding it.

    ``requires()`` with no permission admits any active staff member.
    """

    def mark(view: F) -> F:
        setattr(view, _ACCESS_ATTR, ("staff", permission))
        return view

    return mark


_PUBLIC_ENDPOINTS_KEY = "clinic_saas.public_endpoints"


def declare_public(app: Flask, endpoint: str) -> None:
    """Declare a view registered by a library (the OpenAPI document) public."""
    app.extensions.setdefault(_PUBLIC_ENDPOINTS_KEY, set()).add(endpoint)


def access_rule(app: Flask, endpoint: str | None, method: str) -> tuple[Any, ...] | None:
    """Return the access declared by the view serving ``endpoint`` for ``method``, or None."""
    if endpoint is None:
        return None
    if endpoint in app.extensions.get(_PUBLIC_ENDPOINTS_KEY, ()):
        return ("public",)
    view = app.view_functions.get(endpoint)
    if view is None:
        return None
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        if handler is None and method == "HEAD":
            handler = getattr(view_class, "get", None)
        return getattr(handler, _ACCESS_ATTR, None) if handler is not None else None
    return getattr(view, _ACCESS_ATTR, None)


# --- flask-login -------------------------------------------------------------


@login_manager.user_loader
def _load_user(identity: str) -> User | None:
    if request.headers.get("Authorization"):
        return None  # a bearer token speaks for this request, not the cookie
    user_id, _, epoch = identity.partition(".")
    if not user_id.isdigit() or not epoch.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_epoch != int(epoch):
        return None
    return user


@login_manager.unauthorized_handler
def _unauthorized() -> None:
    raise Problem(401, "Sign in or send an API token.")


# --- the guard ---------------------------------------------------------------


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or not value.strip():
        raise Problem(
            401,
            "Use 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": 'Bearer realm="clinic-saas"'},
        )
    return value.strip()


@dataclass(frozen=True)
class _KeptToken:
    """A live token and its user's membership, as read at one setup version of their clinic."""

    token: ApiToken
    membership: Membership | None


def _token_lookup(secret: str) -> tuple[ApiToken | None, Membership | None]:
    """Return the token and membership for ``secret`` from memory if the clinic's setup
    is unchanged since they were read, else read them (one statement) and keep them."""
    ref = require_clinic_ref()
    version = kept.known_version()
    user = g.get("kept_token_user")
    store = kept.kept_setup()
    digest = token_digest(secret)
    if version is not None:
        hit, found = store.get(ref.id, version, "api_token", digest)
        if hit and user is not None and user.id == found.token.user_id:
            token = kept.attach(found.token)
            if token.expires_at is None or clock.as_utc(token.expires_at) > clock.now():
                membership = kept.attach(found.membership) if found.membership else None
                return token, membership
    # The token, its user and their membership here in one statement (this clinic's scope).
    token, membership = staff_token_for_secret(secret)
    if token is not None and version is not None and kept.known_version() == version:
        store.keep(
            ref.id,
            version,
            "api_token",
            digest,
            _KeptToken(kept.detached_copy(token), membership and kept.detached_copy(membership)),
        )
    return token, membership


def _kept_token_user(slug: str) -> int | None:
    """The user of the token this request carries, if it is kept: read with the clinic's row."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    store = kept.kept_setup()
    clinic_id = store.clinic_ids.get(slug)
    found = store.peek(clinic_id, "api_token", token_digest(secret.strip())) if clinic_id else None
    return found[1].token.user_id if found is not None else None


def _authenticate(clinic: Clinic | None) -> Principal | None:
    """Return who is calling, from a bearer token or the session, or None."""
    secret = _bearer_token()
    if secret is not None:
        if clinic is None:
            # A token acts at its own clinic only; the platform API takes the operator's session.
            raise Problem(403, "Only the platform operator may do this.")
        token, membership = _token_lookup(secret)
        if token is None:
            raise Problem(
                401,
                "The API token is unknown, revoked or expired.",
                kind="invalid-token",
                headers={"WWW-Authenticate": 'Bearer realm="clinic-saas", error="invalid_token"'},
            )
        if not token.user.active:
            raise Problem(401, "The account behind this token is disabled.", kind="invalid-token")
        return Principal(user=token.user, via="token", token=token, membership=membership)
    if not current_user.is_authenticated:
        return None
    return Principal(user=current_user._get_current_object(), via="session")


def _note_use(token: ApiToken) -> None:
    """Record when a token was last used, at most once a minute (a write per call is waste)."""
    now = clock.now()
    if token.last_used_at is None or now - clock.as_utc(token.last_used_at) > timedelta(minutes=1):
        with unit_of_work():
            token.last_used_at = now
        version = kept.known_version()
        found = kept.kept_setup().peek(token.clinic_id, "api_token", token.token_hash)
        if found is not None and version is not None and found[0] == version:
            # The kept copy learns it too, or every call after the minute would write again.
            set_committed_value(found[1].token, "last_used_at", now)


def _expire(detail: str) -> Problem:
    logout_user()
    session.clear()
    return Problem(401, detail, kind="session-expired")


def _check_idle(clinic: Clinic | None) -> None:
    """Sign the session out if it has been idle longer than the clinic allows, or is too old."""
    issued_at = session.get("issued_at")
    max_age = timedelta(hours=current_app.config["SESSION_MAX_HOURS"]).total_seconds()
    if issued_at is None or clock.now().timestamp() - float(issued_at) > max_age:
        raise _expire("Your session has ended; please sign in again.")
    seen_at = session.get("seen_at")
    minutes = (
        clinic.idle_timeout_minutes
        if clinic is not None
        else current_app.config["DEFAULT_IDLE_TIMEOUT_MINUTES"]
    )
    now = clock.now().timestamp()
    if seen_at is not None and now - float(seen_at) > timedelta(minutes=minutes).total_seconds():
        raise _expire(f"You were signed out after {minutes} minutes without activity.")
    session["seen_at"] = now


_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@functools.cache
def _clinic_statement(dialect: str) -> Any:
    # Built once for each database kind: every request to a clinic's address runs it first,
    # as Core on the session's connection (the ORM's work per statement is most of its cost).
    # The clinic's row itself is kept with its setup, so only its id and setup version are
    # read here; the user of a kept token comes too (users are not clinic-owned, so no scope
    # is needed to read them), so a kept token costs no statement of its own.
    clinic, user = Clinic.__table__, User.__table__
    return (
        select(
            clinic.c.id,
            clinic.c.setup_version,
            scope_in_same_statement(clinic.c.id),
            *(column.label(f"user_{column.name}") for column in user.c),
        )
        .select_from(clinic.outerjoin(user, user.c.id == bindparam("user_id")))
        .where(clinic.c.slug == bindparam("slug"))
    )


def _enter_clinic_of_request(slug: str) -> Clinic:
    if not _SLUG.match(slug):
        raise Problem(404, "No such clinic.")
    # One round trip: the clinic's id and setup version, with its scope set for row-level
    # security as they are read; its row from memory while that version stands.
    dialect = db.session.get_bind().dialect.name
    store = kept.kept_setup()
    found = (
        db.session.connection()
        .execute(_clinic_statement(dialect), {"slug": slug, "user_id": _kept_token_user(slug)})
        .first()
    )
    if found is None:
        raise Problem(404, "No such clinic.")
    clinic_id, version = found[0], found[1]
    g.kept_token_user = None
    if found.user_id is not None:
        # Held by ``g`` for the request: the session keeps rows only while something
        # refers to them, and the token's ``user`` is found among them without SQL.
        columns = found._mapping
        g.kept_token_user = kept.loaded(
            User, {column.name: columns[f"user_{column.name}"] for column in User.__table__.c}
        )
    clinic = kept.attach(
        store.get_or_keep(
            clinic_id,
            version,
            "clinic",
            None,
            lambda: kept.detached_copy(db.session.get_one(Clinic, clinic_id)),
        )
    )
    g.clinic_scope_token = enter_clinic(
        ClinicRef(clinic.id, clinic.slug, clinic.locale), database_told=True
    )
    kept.know_version(clinic.id, version)
    store.clinic_ids[slug] = clinic.id
    g.clinic = clinic
    return clinic


def guard() -> None:
    """Authorise the current request, or raise the problem that refuses it."""
    g.principal = None
    rule = access_rule(current_app, request.endpoint, request.method)
    if request.endpoint is None or request.routing_exception is not None:
        return  # routing errors (404, 405) are reported as such
    if request.method == "OPTIONS":
        return  # Flask answers with the allowed methods, which reveal nothing
    if rule is None:
        current_app.logger.error("endpoint %s declares no access rule; refused", request.endpoint)
        raise Problem(403, "This endpoint is not open to anyone.", kind="no-access-rule")
    slug = (request.view_args or {}).get(CLINIC_ARG)
    clinic = _enter_clinic_of_request(slug) if slug is not None else None
    if rule[0] == "public":
        if clinic is not None and throttle.is_counted(
            current_app.view_functions.get(request.endpoint)
        ):
            # A clinic's public routes (its menu, times, booking, clients' links) are
            # anyone's to call: each address gets a number of calls, on every server.
            throttle.count_public_request(reading=request.method in ("GET", "HEAD"))
        if clinic is not None and not clinic.is_active and "while_closed" not in rule:
            # What clients use (the menu, times, booking) waits until the clinic opens.
            raise Problem(
                403,
                f"{clinic.name} is not taking bookings online"
                + (" yet." if clinic.status == ClinicStatus.onboarding else " at the moment."),
                kind="clinic-closed",
            )
        return
    principal = _authenticate(clinic)
    if principal is None:
        raise Problem(
            401,
            "Sign in or send an API token.",
            headers={"WWW-Authenticate": 'Bearer realm="clinic-saas"'},
        )
    if principal.via == "session":
        bound = session.get("clinic_id")
        wanted = clinic.id if clinic is not None else "platform"
        if bound != wanted:
            # A cookie never carries a user from one clinic (or the platform) to another.
            raise Problem(404) if clinic is not None else Problem(403, "Sign in as the operator.")
        _check_idle(clinic)
    if rule[0] == "operator":
        # Only a signed-in operator session: a clinic's API token never
        # reaches the platform API, even one held by an operator.
        if principal.via != "session" or not principal.user.is_operator or clinic is not None:
            raise Problem(403, "Only the platform operator may do this.")
        g.principal = principal
        return
    # Staff rule: the caller must be on this clinic's staff.
    if clinic is None:
        raise Problem(404)
    membership = principal.membership if principal.via == "token" else membership_of(principal.user)
    if membership is None:
        raise Problem(404)
    if not clinic.staff_may_enter:
        raise Problem(
            403, f"This clinic is {clinic.status.value} on the platform.", kind="clinic-suspended"
        )
    permission = rule[1]
    if permission is not None and not role_may(membership.role, permission):
        raise Problem(
            403,
            f"Your role ({membership.role.value}) does not allow this ({permission.value}).",
        )
    g.principal = Principal(
        user=principal.user, via=principal.via, membership=membership, token=principal.token
    )
    if principal.token is not None:
        _note_use(principal.token)


def close_request_scope(error: BaseException | None = None) -> None:
    """Leave the clinic scope the request entered, if any."""
    kept.forget_version()
    token = g.pop("clinic_scope_token", None)
    if token is not None:
        leave_clinic(token)


def current_principal() -> Principal:
    """Return the authorised caller of the current request."""
    principal = g.get("principal")
    if principal is None:
        raise Problem(401)
    return principal


def current_clinic() -> Clinic:
    """Return the clinic of the current request's URL."""
    clinic = g.get("clinic")
    if clinic is None:
        raise Problem(404)
    return clinic


def init_app(app: Flask) -> None:
    """Install the guard on ``app``."""
    app.before_request(guard)
    app.after_request(throttle.rate_limit_headers)
    app.teardown_request(close_request_scope)
