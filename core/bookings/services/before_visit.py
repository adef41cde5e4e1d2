"""Before the visit: the clinic's health intake and the consents a treatment needs, from the client's link.

The questions and the documents are the clinic's, from the ``[bookings]`` table of
its tenants/ file (``intake``, ``consent_forms``). Answers and signatures go
through the clients' own intake and consent services, so they are encrypted and
audited exactly as when staff record them; here they name the client as the one
who gave them.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core import clock
from core.bookings.models import Booking, BookingStatus
from core.bookings.services.acceptance import IP_ADDRESS_LENGTH, USER_AGENT_LENGTH, _clip
from core.bookings.settings import booking_settings
from core.catalog.models import Service
from core.clients import services as clients
from core.clients.models import Client, Consent, ConsentKind, Guardian, HealthIntake
from core.errors import Invalid, NotFound, Refused, field_error
from core.extensions import db
from core.tenancy.models import Clinic
from core.unit_of_work import transaction

#: What the client confirms by signing; stored with each signature, word for word.
SIGNING_STATEMENT = (
    "I have read this document and I agree to it. Typing my full name is my signature."
)
#: Bookings a client may still prepare for.
_OPEN = (BookingStatus.held, BookingStatus.confirmed)


@dataclass(frozen=True)
class ConsentForm:
    """One of the clinic's consent documents, at its current version."""

    id: str
    title: str
    version: str
    text: str

    @property
    def sha256(self) -> str:
        """The hash of the exact words signed, kept with the signature as evidence."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Preparation:
    """What the client has done before the visit: the intake, and each consent the treatment needs."""

    intake_answered_at: datetime | None
    forms: list[tuple[ConsentForm, Consent | None]]


def intake_questions(clinic: Clinic) -> list[dict[str, Any]]:
    """The clinic's health intake questions, in order."""
    return list(booking_settings(clinic)["intake"])


def consent_forms(clinic: Clinic, booking: Booking) -> list[ConsentForm]:
    """The consent documents the booked treatment needs, by its category."""
    category = db.session.get_one(Service, booking.service_id).category
    return [
        ConsentForm(form["id"], form["title"], form["version"], form["text"])
        for form in booking_settings(clinic)["consent_forms"]
        if not form["categories"] or category in form["categories"]
    ]


def preparation(clinic: Clinic, booking: Booking) -> Preparation:
    """What is done and what is left before the visit (reads no health data)."""
    answered = db.session.scalar(
        select(func.max(HealthIntake.recorded_at)).where(
            HealthIntake.client_id == booking.client_id
        )
    )
    signed = _signed(booking.client_id)
    return Preparation(
        answered,
        [(form, signed.get((form.id, form.version))) for form in consent_forms(clinic, booking)],
    )


@transaction
def answer_intake(clinic: Clinic, booking: Booking, answers: dict[str, str]) -> HealthIntake:
    """Record the client's answers to the clinic's intake as a new version of their intake.

    Every required question must be answered (``yes`` or ``no`` for a yes/no
    question); each answer is kept with the question's words as asked.
    """
    _still_open(booking)
    questions = intake_questions(clinic)
    errors = []
    kept: dict[str, Any] = {}
    for question in questions:
        value = (answers.get(question["id"]) or "").strip()
        if question["kind"] == "yes_no" and value not in ("", "yes", "no"):
            errors.append(field_error(question["id"], "Choose yes or no.", "form"))
        elif len(value) > 4000:
            errors.append(
                field_error(question["id"], "Please keep this under 4,000 characters.", "form")
            )
        elif not value and question["required"]:
            errors.append(field_error(question["id"], "Please answer this question.", "form"))
        kept[question["id"]] = {"question": question["question"], "answer": value}
    if errors:
        raise Invalid("Some questions need an answer.", errors=errors)
    record = db.session.get_one(Client, booking.client_id)
    return clients.intake_from_client(record, kept)


@transaction
def sign_consent(
    clinic: Clinic,
    booking: Booking,
    form_id: str,
    typed_name: str,
    agreed: bool,
    *,
    ip_address: str | None,
    user_agent: str | None,
) -> Consent:
    """Record the client's electronic signature of one consent document the treatment needs.

    The client types their full name (or the name of their guardian on file)
    and confirms :data:`SIGNING_STATEMENT`. The consent keeps the document's
    exact words and version; its evidence keeps the document's hash, the typed
    name, the statement, the time, and the address and browser the page
    passes in (clipped as a policy acceptance's are).
    """
    _still_open(booking)
    form = next((f for f in consent_forms(clinic, booking) if f.id == form_id), None)
    if form is None:
        raise NotFound("This treatment does not need that document.")
    record = db.session.get_one(Client, booking.client_id)
    errors = []
    typed = " ".join(typed_name.split())
    if not typed:
        errors.append(field_error("typed_name", "Type your full name to sign.", "form"))
    elif not _names_signer(record, typed):
        errors.append(
            field_error(
                "typed_name",
                "Type your full name as you gave it when booking "
                f"({record.legal_first_name} {record.legal_last_name}), "
                "or your guardian's name as the clinic has it.",
                "form",
            )
        )
    if not agreed:
        errors.append(field_error("agree", "Confirm that you have read and agree to it.", "form"))
    if errors:
        raise Invalid("The document is not signed yet.", errors=errors)
    already = _signed(record.id).get((form.id, form.version))
    if already is not None:
        return already  # signed once; a second click adds nothing
    return clients.consent_from_client(
        record,
        {
            "kind": ConsentKind.treatment,
            "text": form.text,
            "text_version": form.version,
            "evidence": {
                "form_id": form.id,
                "title": form.title,
                "document_sha256": form.sha256,
                "typed_name": typed,
                "statement": SIGNING_STATEMENT,
                "signed_at": clock.now().isoformat(),
                "booking_id": booking.id,
                "channel": "booking link",
                "ip_address": _clip(ip_address, IP_ADDRESS_LENGTH),
                "user_agent": _clip(user_agent, USER_AGENT_LENGTH),
            },
        },
    )


def _still_open(booking: Booking) -> None:
    if booking.status not in _OPEN:
        raise Refused(
            "This booking is no longer coming up; nothing is asked before it.",
            kind="booking-closed",
        )


def _signed(client_id: int) -> dict[tuple[str, str], Consent]:
    """The client's standing treatment consents, by the document and version they sign."""
    found = db.session.scalars(
        select(Consent).where(
            Consent.client_id == client_id,
            Consent.kind == ConsentKind.treatment,
            Consent.revoked_at.is_(None),
        )
    )
    return {
        (str(c.evidence["form_id"]), c.text_version): c
        for c in found
        if isinstance(c.evidence, dict) and c.evidence.get("form_id")
    }


def _plain(name: str) -> str:
    # Case, accents and spacing aside: "josé  GARCÍA" signs for "José García".
    decomposed = unicodedata.normalize("NFKD", name)
    return " ".join(
        "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split()
    )


def _names_signer(record: Client, typed: str) -> bool:
    names = {f"{record.legal_first_name} {record.legal_last_name}"}
    if record.preferred_name:
        names.add(f"{record.preferred_name} {record.legal_last_name}")
    names.update(db.session.scalars(select(Guardian.name).where(Guardian.client_id == record.id)))
    return _plain(typed) in {_plain(name) for name in names}
