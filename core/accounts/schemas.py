"""API schemas for signing in, staff and API tokens."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.accounts.models import Role
from core.api import CursorPage
from core.schemas import Email, UtcDateTime, text


class LoginSchema(Schema):
    """Credentials to sign in to one clinic (or to the platform, for the operator)."""

    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=256)
    )


class UserSchema(Schema):
    """A user as other staff see them."""

    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True)


class SessionSchema(Schema):
    """Who is signed in, where, with which role."""

    user = fields.Nested(UserSchema)
    clinic = fields.String(allow_none=True)
    role = fields.Enum(Role, by_value=True, allow_none=True)
    operator = fields.Boolean()
    via = fields.String()
    idle_timeout_minutes = fields.Integer()


class MembershipSchema(Schema):
    """A member of the clinic's staff."""

    id = fields.Integer(dump_only=True)
    user = fields.Nested(UserSchema, dump_only=True)
    role = fields.Enum(Role, by_value=True, dump_only=True)
    active = fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class MembershipListSchema(CursorPage):
    items = fields.List(fields.Nested(MembershipSchema))


class StaffCreateSchema(Schema):
    """A person to add to the staff. A new account needs a password."""

    email = Email(required=True)
    name = fields.String(required=True, validate=text(200))
    role = fields.Enum(Role, by_value=True, required=True)
    password = fields.String(load_only=True, validate=validate.Length(max=256))


class StaffUpdateSchema(Schema):
    """A change to a staff member's role or standing."""

    role = fields.Enum(Role, by_value=True)
    active = fields.Boolean()


class TokenCreateSchema(Schema):
    """A new API token for the caller at this clinic."""

    name = fields.String(required=True, validate=text(100))
    expires_in_days = fields.Integer(validate=validate.Range(min=1, max=366), allow_none=True)


class TokenSchema(Schema):
    """An API token; the secret appears only in the response that creates it."""

    id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)
    prefix = fields.String(dump_only=True)
    user = fields.Nested(UserSchema, dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    expires_at = UtcDateTime(dump_only=True, allow_none=True)
    last_used_at = UtcDateTime(dump_only=True, allow_none=True)
    revoked_at = UtcDateTime(dump_only=True, allow_none=True)


class IssuedTokenSchema(TokenSchema):
    """A token just issued, with its secret: the only time the secret is shown."""

    token = fields.String(attribute="secret", dump_only=True)


class TokenListSchema(CursorPage):
    items = fields.List(fields.Nested(TokenSchema))
