"""Staff accounts: users, their memberships of clinics with a role, and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.tenancy.kept import part_of_setup
from core.tenancy.scope import ClinicScoped


class Role(enum.StrEnum):
    """What a member of a clinic's staff does there; it decides what they may do."""

    owner = "owner"
    manager = "manager"
    provider = "provider"
    front_desk = "front_desk"


class User(UserMixin, Model):
    """A person who signs in: clinic staff, or the platform's operator.

    Users are global (one login for someone who works at two clinics), but
    what they may see is decided per clinic by their :class:`Membership`.
    """

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_operator: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    # Bumped on password change or "sign out everywhere"; sessions carry it.
    session_epoch: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())

    @property
    def is_active(self) -> bool:
        """Return whether the account may sign in (flask-login asks this)."""
        return self.active

    def get_id(self) -> str:
        """Return the session identity: the id and the epoch it was issued in."""
        return f"{self.id}.{self.session_epoch}"

    def __repr__(self) -> str:
        return f"<User {self.id}>"


@part_of_setup()
class Membership(ClinicScoped, Model):
    """A user's place on one clinic's staff, with the role that decides their access."""

    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("clinic_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    role: Mapped[Role] = mapped_column(StoredEnum(Role, 16))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<Membership user={self.user_id} clinic={self.clinic_id} {self.role}>"


@part_of_setup(ignoring=("last_used_at",))
class ApiToken(ClinicScoped, Model):
    """A revocable bearer token acting for one staff member at one clinic.

    Only a SHA-256 digest of the token is stored. Tokens are clinic-owned rows:
    one is looked up only inside the scope of the clinic in the URL, so a token
    of clinic A presented at clinic B's URL is unknown there (401), and row-level
    security hides every other clinic's tokens from the app's database role.
    """

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("clinic_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())

    user: Mapped[User] = relationship()

    #: The secret itself, set only on the object ``issue_token`` returns; never stored.
    secret = None

    def __repr__(self) -> str:
        return f"<ApiToken {self.prefix} clinic={self.clinic_id}>"


class PasswordLink(ClinicScoped, Model):
    """A single-use, expiring link that lets a person set their password at one clinic.

    An invitation (the clinic's first owner, or new staff) and a password reset
    are the same thing: only the token's SHA-256 is kept, the token itself goes
    in the email. Used once, then dead; a newer link of the same kind kills
    the older ones.
    """

    __tablename__ = "password_link"
    __table_args__ = (UniqueConstraint("clinic_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    #: ``"invitation"`` or ``"reset"``.
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    used_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
