"""Staff accounts: sign-in, staff membership and roles, and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from core import clock
from core.accounts.models import ApiToken, Membership, PasswordLink, Role, User
from core.accounts.passwords import hash_password, needs_rehash, password_problem, verify_password
from core.errors import (
    Invalid,
    NotAllowed,
    NotFound,
    Refused,
    Unauthenticated,
    field_error,
)
from core.extensions import db
from core.tenancy.models import Clinic
from core.unit_of_work import transaction

TOKEN_PREFIX = "cst_"


def normalise_email(email: str, field: str = "email") -> str:
    """Return ``email`` in the form accounts are keyed by, or raise a 422 naming ``field``."""
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise Invalid(
            "The email address is not valid.", errors=[field_error(field, str(error))]
        ) from None
    return result.normalized.lower()


def _check_password(password: str, field: str = "password") -> None:
    reason = password_problem(password)
    if reason:
        raise Invalid("The password is too weak.", errors=[field_error(field, reason)])


def user_by_email(email: str) -> User | None:
    """Return the account with ``email`` (any case), or None."""
    return db.session.scalar(select(User).where(User.email == email.strip().lower()))


def authenticate(email: str, password: str) -> User | None:
    """Return the active user whose ``email`` and ``password`` match, or None.

    Rehashes the stored password when the hashing parameters have grown.
    """
    user = user_by_email(email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    if user is None or not user.active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = clock.now()
    return user


def bad_credentials() -> Unauthenticated:
    """Return the one answer for every failed sign-in, whatever failed."""
    return Unauthenticated("The email or password is wrong.", kind="invalid-credentials")


@transaction
def sign_in(clinic: Clinic, email: str, password: str) -> tuple[User, Membership]:
    """Check a staff member's credentials for ``clinic``; the one answer for any failure."""
    user = authenticate(email, password)
    membership = membership_of(user) if user else None
    if user is None or membership is None:
        raise bad_credentials()
    if not clinic.staff_may_enter:
        raise NotAllowed(
            f"This clinic is {clinic.status.value} on the platform.", kind="clinic-suspended"
        )
    return user, membership


@transaction
def operator_sign_in(email: str, password: str) -> User:
    """Check the platform operator's credentials; the one answer for any failure."""
    user = authenticate(email, password)
    if user is None or not user.is_operator:
        raise bad_credentials()
    return user


@transaction
def sign_out_everywhere(user: User) -> None:
    """Invalidate every session cookie ``user`` holds: the epoch they carry moves on.

    Session cookies are signed, not stored, so a copy kept after sign-out
    would still work without this.
    """
    user.session_epoch += 1


def membership_of(user: User) -> Membership | None:
    """Return ``user``'s active membership of the current clinic, or None."""
    return db.session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.active.is_(True))
    )


def staff() -> list[Membership]:
    """Return every membership of the current clinic, active or not, oldest first."""
    return list(db.session.scalars(select(Membership).order_by(Membership.id)))


def staff_member(membership_id: int) -> Membership:
    """Return the current clinic's membership ``membership_id`` or raise 404."""
    membership = db.session.scalar(select(Membership).where(Membership.id == membership_id))
    if membership is None:
        raise NotFound("No such staff member at this clinic.")
    return membership


@transaction
def create_user(email: str, name: str, password: str, *, is_operator: bool = False) -> User:
    """Create a platform account, refusing a weak password or an email already in use."""
    email = normalise_email(email)
    _check_password(password)
    if user_by_email(email) is not None:
        raise Refused(
            "An account with this email already exists.",
            errors=[field_error("email", "already in use")],
        )
    user = User(
        email=email,
        name=name.strip(),
        password_hash=hash_password(password),
        is_operator=is_operator,
    )
    db.session.add(user)
    db.session.flush()
    return user


def _may_assign(actor: Membership | None, role: Role) -> bool:
    # Only owners make or unmake owners; the CLI (no actor) may do anything.
    return actor is None or actor.role == Role.owner or role != Role.owner


def _active_owners() -> int:
    return sum(1 for m in staff() if m.active and m.role == Role.owner)


@transaction
def add_staff(
    email: str,
    name: str,
    role: Role,
    password: str | None = None,
    *,
    actor: Membership | None = None,
) -> Membership:
    """Put a person on the current clinic's staff with ``role``.

    A person who already has an account (at another clinic) keeps their
    password; a new person needs one. Adding someone already on the staff
    is a conflict; re-adding a former member reactivates them.
    """
    if not _may_assign(actor, role):
        raise NotAllowed("Only an owner can add an owner.")
    email = normalise_email(email)
    user = user_by_email(email)
    if user is None:
        if not password:
            raise Invalid(
                "A new staff member needs a password.",
                errors=[field_error("password", "required for a new account")],
            )
        user = create_user(email, name, password)
    existing = db.session.scalar(select(Membership).where(Membership.user_id == user.id))
    if existing is not None:
        if existing.active:
            raise Refused(
                "This person is already on the clinic's staff.",
                errors=[field_error("email", "already a member")],
            )
        existing.active = True
        existing.role = role
        db.session.flush()
        return existing
    membership = Membership(user_id=user.id, role=role, active=True)
    db.session.add(membership)
    db.session.flush()
    return membership


@transaction
def update_staff(
    membership: Membership,
    *,
    role: Role | None = None,
    active: bool | None = None,
    actor: Membership | None = None,
) -> Membership:
    """Change a staff member's role or active flag, never leaving the clinic without an owner."""
    touches_owner = membership.role == Role.owner or role == Role.owner
    if touches_owner and not _may_assign(actor, Role.owner):
        raise NotAllowed("Only an owner can change an owner's membership.")
    losing_owner = (
        membership.role == Role.owner
        and membership.active
        and ((role is not None and role != Role.owner) or active is False)
    )
    if losing_owner and _active_owners() <= 1:
        raise Refused("A clinic must keep at least one active owner.", kind="last-owner")
    if role is not None:
        membership.role = role
    if active is not None:
        membership.active = active
        if not active:
            _revoke_tokens_of(membership.user_id)
    db.session.flush()
    return membership


# --- API tokens --------------------------------------------------------------


def token_digest(secret: str) -> str:
    """Return what is stored of a token secret: its SHA-256, in hex."""
    # Tokens carry 256 bits of randomness, so a fast digest is enough: there
    # is nothing to brute-force, unlike a password.
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction
def issue_token(
    membership: Membership, name: str, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """Create an API token for ``membership`` and return it with its secret, shown only once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        clinic_id=membership.clinic_id,
        user_id=membership.user_id,
        name=name.strip(),
        prefix=secret[:12],
        token_hash=token_digest(secret),
        expires_at=clock.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(token)
    db.session.flush()
    token.secret = secret
    return token, secret


def staff_token_for_secret(secret: str) -> tuple[ApiToken | None, Membership | None]:
    """Return the live token whose secret is ``secret`` and its user's active membership here.

    One statement for what every API call needs to know of its caller.
    """
    if not secret.startswith(TOKEN_PREFIX):
        return None, None
    found = db.session.execute(
        select(ApiToken, Membership)
        .options(joinedload(ApiToken.user))
        .outerjoin(
            Membership,
            (Membership.user_id == ApiToken.user_id) & Membership.active.is_(True),
        )
        .where(ApiToken.token_hash == token_digest(secret))
    ).first()
    if found is None:
        return None, None
    token, membership = found
    if token.revoked_at is not None:
        return None, None
    if token.expires_at is not None and clock.as_utc(token.expires_at) <= clock.now():
        return None, None
    return token, membership


def tokens() -> list[ApiToken]:
    """Return the current clinic's API tokens, newest first, each with its user."""
    # The user in the same query: the list shows each token's user, who differ.
    return list(
        db.session.scalars(
            select(ApiToken).options(joinedload(ApiToken.user)).order_by(ApiToken.id.desc())
        )
    )


def token(token_id: int) -> ApiToken:
    """Return the current clinic's token ``token_id`` or raise 404."""
    found = db.session.scalar(select(ApiToken).where(ApiToken.id == token_id))
    if found is None:
        raise NotFound("No such API token at this clinic.")
    return found


@transaction
def revoke_token(found: ApiToken) -> ApiToken:
    """Revoke ``found``; revoking twice keeps the first revocation time."""
    if found.revoked_at is None:
        found.revoked_at = clock.now()
    db.session.flush()
    return found


def _revoke_tokens_of(user_id: int) -> None:
    for found in tokens():
        if found.user_id == user_id and found.revoked_at is None:
            found.revoked_at = clock.now()


#: How long each kind of link to set a password works.
LINK_LIFETIME = {"invitation": timedelta(days=3), "reset": timedelta(hours=1)}


def new_password_link(user: User, clinic: Clinic, purpose: str) -> str:
    """Make a link for ``user`` to set their password at ``clinic``; return its token.

    Only the token's digest is kept. Older unused links of the same purpose die,
    so only the newest email works.
    """
    now = clock.now()
    for older in db.session.scalars(
        select(PasswordLink).where(
            PasswordLink.user_id == user.id,
            PasswordLink.purpose == purpose,
            PasswordLink.used_at.is_(None),
        )
    ):
        older.used_at = now
    token = secrets.token_urlsafe(32)
    db.session.add(
        PasswordLink(
            user_id=user.id,
            clinic_id=clinic.id,
            purpose=purpose,
            token_hash=token_digest(token),
            expires_at=now + LINK_LIFETIME[purpose],
        )
    )
    db.session.flush()
    return token


@transaction
def set_password_with_link(clinic: Clinic, token: str, password: str) -> User:
    """Set a password through a link of ``clinic``'s; the link is then spent.

    An unknown token is a 404; a used or lapsed one a 409 saying which, so the
    person knows to ask for a new one. Every other session of the person ends.
    """
    link = db.session.scalar(
        select(PasswordLink)
        .where(PasswordLink.token_hash == token_digest(token), PasswordLink.clinic_id == clinic.id)
        .with_for_update()
    )
    if link is None:
        raise NotFound("No such link: ask the clinic for a new one.")
    if link.used_at is not None:
        raise Refused("This link has been used already: ask for a new one.", kind="link-used")
    if clock.as_utc(link.expires_at) <= clock.now():
        raise Refused("This link has expired: ask for a new one.", kind="link-expired")
    _check_password(password)
    user = db.session.get_one(User, link.user_id)
    user.password_hash = hash_password(password)
    user.session_epoch += 1
    link.used_at = clock.now()
    return user
