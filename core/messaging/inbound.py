"""Texts clients send back: opt-out, help and opt-in keywords, and opt-outs in their own words.

Keywords follow the CTIA handbook and carrier practice. ``CANCEL`` is an
opt-out keyword at the carriers, so it never cancels an appointment here.
What a STOP stopped is said in the reply: every text from the clinic,
appointment reminders and marketing alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core import clock
from core.clients.models import Client, Consent, ConsentKind, ConsentMethod
from core.clients.services import withdraw_consents
from core.errors import NotFound, Refused
from core.extensions import db
from core.privacy.calendars import add_us_business_days, end_of_day, local_day
from core.privacy.models import OptOutReview
from core.schemas import normalise_phone
from core.tenancy.models import Clinic
from core.unit_of_work import transaction

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
HELP_WORDS = frozenset({"HELP", "INFO"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
#: Words that make a free-text reply a likely revocation (47 CFR 64.1200(a)(10)).
REVOCATION = re.compile(
    r"\b(stop|quit|end|revoke|opt[\s-]?out|cancel|unsubscribe|don'?t text|no more texts?)\b",
    re.IGNORECASE,
)
#: The consents an SMS opt-out withdraws: every text the clinic sends.
SMS_CONSENTS = (ConsentKind.transactional_sms, ConsentKind.marketing_sms)
#: Revocations in free text are honoured within this many business days.
HONOUR_BUSINESS_DAYS = 10


@dataclass(frozen=True)
class InboundResult:
    """What an inbound text did, and the reply to send (if any)."""

    action: str  # opted_out, opted_in, help, review, ignored
    reply: str | None
    clients: tuple[int, ...] = ()
    stopped: tuple[str, ...] = ()


def _e164(number: str, region: str) -> str:
    try:
        return normalise_phone(number, region)
    except ValueError:
        return number  # an unusual sender: match it as given


def _clients_with(phone: str) -> list[Client]:
    return list(db.session.scalars(select(Client).where(Client.phone == phone).order_by(Client.id)))


def _contact(clinic: Clinic) -> str:
    return clinic.contact_phone or clinic.contact_email or clinic.name


@transaction
def handle(clinic: Clinic, sender: str, body: str, now: datetime | None = None) -> InboundResult:
    """Apply one inbound text from ``sender`` to the clinic's clients with that number."""
    now = now or clock.now()
    phone = _e164(sender, clinic.country)
    word = body.strip().upper().rstrip(".!")
    found = _clients_with(phone)
    ids = tuple(c.id for c in found)
    if word in STOP_WORDS:
        stopped = {c.kind.value for c in withdraw_consents(ids, SMS_CONSENTS, f"sms:{word}")}
        return InboundResult(
            "opted_out",
            f"{clinic.name}: you are unsubscribed and will get no more texts from us, neither "
            "appointment reminders nor offers. Reply START to resubscribe.",
            ids,
            tuple(sorted(stopped)),
        )
    if word in START_WORDS:
        restored = set()
        for client in found:
            for kind in _last_stopped(client.id):
                db.session.add(
                    Consent(
                        client_id=client.id,
                        kind=kind,
                        text=f"Replied {word} to {clinic.name} to resubscribe to texts.",
                        text_version="sms-keyword",
                        given_at=now,
                        method=ConsentMethod.sms_keyword,
                        evidence={"from": phone, "body": body[:160]},
                        phone=phone,
                    )
                )
                restored.add(kind.value)
        return InboundResult(
            "opted_in",
            f"{clinic.name}: you are resubscribed to appointment reminders"
            f"{' and offers' if ConsentKind.marketing_sms.value in restored else ''}. "
            "Msg frequency varies. Msg & data rates may apply. Reply HELP for help, STOP to opt out.",
            ids,
            tuple(sorted(restored)),
        )
    if word in HELP_WORDS:
        return InboundResult(
            "help",
            f"{clinic.name}: appointment reminders and occasional offers. Msg frequency varies. "
            f"Msg & data rates may apply. Help: {_contact(clinic)}. Reply STOP to opt out.",
            ids,
        )
    if REVOCATION.search(body):
        honour_by = end_of_day(
            add_us_business_days(local_day(now, clinic.timezone), HONOUR_BUSINESS_DAYS, None),
            clinic.timezone,
        )
        for client_id in ids or (None,):
            db.session.add(
                OptOutReview(
                    client_id=client_id,
                    phone=phone,
                    body=body[:1000],
                    received_at=now,
                    honour_by=honour_by,
                )
            )
        return InboundResult("review", None, ids)
    return InboundResult("ignored", None, ids)


def _last_stopped(client_id: int) -> list[ConsentKind]:
    """Return the SMS consents the client's last keyword opt-out withdrew."""
    revoked = list(
        db.session.scalars(
            select(Consent)
            .where(
                Consent.client_id == client_id,
                Consent.kind.in_(SMS_CONSENTS),
                Consent.revocation_method.like("sms:%"),
            )
            .order_by(Consent.revoked_at.desc())
        )
    )
    if not revoked:
        return []
    latest = revoked[0].revoked_at
    active = {
        c.kind
        for c in db.session.scalars(
            select(Consent).where(
                Consent.client_id == client_id,
                Consent.kind.in_(SMS_CONSENTS),
                Consent.revoked_at.is_(None),
            )
        )
    }
    return sorted(
        {c.kind for c in revoked if c.revoked_at == latest and c.kind not in active},
        key=lambda k: k.value,
    )


@transaction
def decide_review(review_id: int, decision: str, user_id: int) -> OptOutReview:
    """Record staff's reading of a free-text reply; an opt-out withdraws every SMS consent."""
    review = db.session.get(OptOutReview, review_id, with_for_update=True)
    if review is None:
        raise NotFound("No such review at this clinic.")
    if review.decided_at is not None:
        raise Refused("This text has been decided already.", kind="already-decided")
    now = clock.now()
    review.decision = decision
    review.decided_at = now
    review.decided_by_user_id = user_id
    if decision == "opted_out" and review.client_id is not None:
        withdraw_consents([review.client_id], SMS_CONSENTS, "sms:free_text")
    return review
