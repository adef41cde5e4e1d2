"""HTTP API for signing in to a clinic, its staff, and API tokens."""

from __future__ import annotations

from typing import Any

from flask import g, session
from flask.views import MethodView
from flask_login import login_user, logout_user

from core import clock
from core.accounts import services
from core.accounts.access import (
    Permission,
    current_clinic,
    current_principal,
    public_while_closed,
    requires,
)
from core.accounts.models import ApiToken, Membership
from core.accounts.schemas import (
    IssuedTokenSchema,
    LoginSchema,
    MembershipListSchema,
    MembershipSchema,
    SessionSchema,
    StaffCreateSchema,
    StaffUpdateSchema,
    TokenCreateSchema,
    TokenListSchema,
)
from core.accounts.throttle import count_sign_in_attempt, sign_in_succeeded
from core.api import Blueprint, PageArgs, by_id, newest_first, page

blp = Blueprint(
    "accounts",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Signing in to a clinic, its staff and their API tokens.",
)


def begin_session(user: Any, bound_to: int | str) -> None:
    """Sign ``user`` in with a fresh session bound to one clinic id, or to "platform"."""
    session.clear()  # a new session identity at sign-in defeats session fixation
    login_user(user, remember=False)
    session["clinic_id"] = bound_to
    session["issued_at"] = session["seen_at"] = clock.now().timestamp()


def end_sessions(user: Any) -> None:
    """Sign ``user`` out of this and every other session.

    Session cookies are signed, not stored, so a copy kept after sign-out
    would still work; bumping the epoch they carry invalidates every copy.
    """
    services.sign_out_everywhere(user)
    logout_user()
    session.clear()


@blp.route("/session")
class Session(MethodView):
    @public_while_closed
    @blp.arguments(LoginSchema)
    @blp.response(201, SessionSchema)
    def post(self, credentials: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Sign in to this clinic with email and password (attempts are throttled)."""
        clinic = current_clinic()
        count_sign_in_attempt(credentials["email"])
        user, membership = services.sign_in(clinic, credentials["email"], credentials["password"])
        sign_in_succeeded(credentials["email"])
        begin_session(user, clinic.id)
        return _describe(user, membership, "session")

    @requires()
    @blp.response(200, SessionSchema)
    def get(self, clinic_slug: str) -> dict[str, Any]:
        """Show who is signed in and with which role."""
        principal = current_principal()
        return _describe(principal.user, principal.membership, principal.via)

    @requires()
    @blp.response(204)
    def delete(self, clinic_slug: str) -> None:
        """Sign out, everywhere: every session cookie this user holds stops working."""
        end_sessions(current_principal().user)


def _describe(user: Any, membership: Membership | None, via: str) -> dict[str, Any]:
    clinic = g.get("clinic")
    return {
        "user": user,
        "clinic": clinic.slug if clinic is not None else None,
        "role": membership.role if membership else None,
        "operator": user.is_operator,
        "via": via,
        "idle_timeout_minutes": clinic.idle_timeout_minutes if clinic is not None else None,
    }


@blp.route("/staff")
class Staff(MethodView):
    @requires(Permission.view_staff)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, MembershipListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the clinic's staff and their roles."""
        return page(services.staff(), args, by_id)

    @requires(Permission.manage_staff)
    @blp.arguments(StaffCreateSchema)
    @blp.response(201, MembershipSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Membership:
        """Add a person to the staff with a role."""
        membership = services.add_staff(
            data["email"],
            data["name"],
            data["role"],
            data.get("password"),
            actor=current_principal().membership,
        )
        return membership


@blp.route("/staff/<id:membership_id>")
class StaffMember(MethodView):
    @requires(Permission.view_staff)
    @blp.response(200, MembershipSchema)
    def get(self, clinic_slug: str, membership_id: int) -> Membership:
        """Show one staff member."""
        return services.staff_member(membership_id)

    @requires(Permission.manage_staff)
    @blp.arguments(StaffUpdateSchema)
    @blp.response(200, MembershipSchema)
    def patch(self, data: dict[str, Any], clinic_slug: str, membership_id: int) -> Membership:
        """Change a staff member's role, or deactivate them."""
        membership = services.update_staff(
            services.staff_member(membership_id),
            role=data.get("role"),
            active=data.get("active"),
            actor=current_principal().membership,
        )
        return membership

    @requires(Permission.manage_staff)
    @blp.response(204)
    def delete(self, clinic_slug: str, membership_id: int) -> None:
        """Remove a person from the staff (their membership is kept, inactive, for the record)."""
        services.update_staff(
            services.staff_member(membership_id), active=False, actor=current_principal().membership
        )


@blp.route("/tokens")
class Tokens(MethodView):
    @requires(Permission.manage_tokens)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, TokenListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the clinic's API tokens (never their secrets)."""
        return page(services.tokens(), args, newest_first)

    @requires(Permission.manage_tokens)
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, IssuedTokenSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> ApiToken:
        """Issue an API token acting for the caller at this clinic; its secret is shown once."""
        token, _ = services.issue_token(
            current_principal().membership, data["name"], data.get("expires_in_days")
        )
        return token


@blp.route("/tokens/<id:token_id>")
class Token(MethodView):
    @requires(Permission.manage_tokens)
    @blp.response(204)
    def delete(self, clinic_slug: str, token_id: int) -> None:
        """Revoke an API token."""
        services.revoke_token(services.token(token_id))
