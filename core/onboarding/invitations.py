"""Inviting a clinic's people and resetting their passwords: a link by email, used once."""

from __future__ import annotations

import secrets

from flask import current_app

from core.accounts import services as accounts
from core.accounts.models import Membership, Role
from core.messaging import outbox
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from core.unit_of_work import unit_of_work


def _link_text(clinic: Clinic, token: str) -> str:
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return (
        f"Your code: {token}\n\n"
        f"Set your password by sending it with your new password to "
        f"{base}/api/v1/clinics/{clinic.slug}/password (JSON: token, password). "
        "The code works once."
    )


def invite(clinic: Clinic, email: str, name: str, role: Role = Role.owner) -> Membership:
    """Put ``email`` on ``clinic``'s staff with ``role`` and email them a link to set a password.

    A new person gets an account they cannot sign in to until they set their
    password; someone who already has one (at another clinic) keeps it and is
    told they were added. The link lasts three days.
    """
    with clinic_scope(clinic), unit_of_work():
        existing = accounts.user_by_email(accounts.normalise_email(email))
        # A new account's password is unguessable until the person sets their own.
        placeholder = None if existing else secrets.token_urlsafe(24) + "Aa1!"
        membership = accounts.add_staff(email, name, role, placeholder)
        user = membership.user
        token = accounts.new_password_link(user, clinic, "invitation")
        outbox.queue(
            "staff_invitation",
            dedupe_key=f"invitation:{user.id}:{token[:12]}",
            to=user.email,
            subject=f"You are invited to {clinic.name} on the booking platform",
            body=(
                f"Hello {user.name},\n\nYou have been added to {clinic.name} as "
                f"{role.value.replace('_', ' ')}.\n\n" + _link_text(clinic, token)
            ),
        )
    return membership


def request_reset(clinic: Clinic, email: str) -> None:
    """Email a password reset link to ``email`` if they are on ``clinic``'s staff; say nothing else.

    The answer is the same whether or not the address is known, so the form
    tells no one who works where. The link lasts an hour.
    """
    with clinic_scope(clinic), unit_of_work():
        user = accounts.user_by_email(email)
        membership = accounts.membership_of(user) if user is not None else None
        if user is None or membership is None or not membership.active or not user.active:
            return
        token = accounts.new_password_link(user, clinic, "reset")
        outbox.queue(
            "password_reset",
            dedupe_key=f"reset:{user.id}:{token[:12]}",
            to=user.email,
            subject=f"Reset your password at {clinic.name}",
            body=f"Hello {user.name},\n\nSomeone asked to reset your password.\n\n"
            + _link_text(clinic, token),
        )
