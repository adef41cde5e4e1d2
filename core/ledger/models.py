"""The clinic's ledger: every money movement, append-only; every balance is derived from it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.money import Money
from core.tenancy.scope import ClinicScoped


class LedgerKind(enum.StrEnum):
    """A kind of money movement the clinic's ledger records."""

    deposit_received = "deposit_received"
    prepayment_received = "prepayment_received"
    fee_charged = "fee_charged"
    deposit_forfeited = "deposit_forfeited"  # kept by the clinic under its policy
    deposit_moved = "deposit_moved"  # carried to the booking's new time
    deposit_applied = "deposit_applied"  # counted toward the bill at checkout
    deposit_unapplied = "deposit_unapplied"  # its bill voided: the deposit waits for the next
    refund = "refund"  # money returned to the client's card
    card_payment = "card_payment"  # a bill paid by card at checkout
    external_tender = "external_tender"  # paid outside Stripe: financing partner, cash
    product_sold = "product_sold"
    product_returned = "product_returned"
    product_exchanged = "product_exchanged"
    gratuity = "gratuity"
    store_credit_issued = "store_credit_issued"
    store_credit_used = "store_credit_used"
    store_credit_expired = "store_credit_expired"
    gift_certificate_sold = "gift_certificate_sold"
    gift_certificate_redeemed = "gift_certificate_redeemed"
    package_sold = "package_sold"
    package_session_used = "package_session_used"
    package_closed = "package_closed"  # unused sessions turned into store credit
    dispute_opened = "dispute_opened"  # funds withdrawn by the card network
    dispute_won = "dispute_won"  # funds returned
    dispute_lost = "dispute_lost"
    membership_payment = "membership_payment"  # a membership's invoice, paid
    platform_fee = (
        "platform_fee"  # the platform's application fee on a charge, kept by Stripe for it
    )


#: Once per Stripe object: a dispute is opened, won or lost once, whichever of Stripe's events
#: tells us first; a membership's invoice is paid once.
ONCE_PER_OBJECT = "kind IN ('dispute_opened', 'dispute_won', 'dispute_lost', 'membership_payment')"
#: The entries that record money received on a payment: at most one of each per payment.
RECEIPTS = "kind IN ('deposit_received', 'prepayment_received', 'fee_charged', 'card_payment')"


class LedgerEntry(ClinicScoped, Model):
    """One money movement, never changed or removed: every balance is derived from these.

    It names bookings, clients and payments by id without foreign keys: the
    ledger outlives the records it mentions (a client's records may be
    deleted when their retention ends; the books are not).
    """

    __tablename__ = "ledger_entry"
    # A payment is received once, whichever path (job, webhook, reconciliation) learns of it.
    __table_args__ = (
        Index("ix_ledger_entry_account", "clinic_id", "account"),
        Index(
            "uq_ledger_entry_once",
            "clinic_id",
            "reference",
            "kind",
            unique=True,
            sqlite_where=text(ONCE_PER_OBJECT),
            postgresql_where=text(ONCE_PER_OBJECT),
        ),
        Index(
            "uq_ledger_entry_receipt",
            "clinic_id",
            "payment_id",
            "kind",
            unique=True,
            sqlite_where=text(RECEIPTS),
            postgresql_where=text(RECEIPTS),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[LedgerKind] = mapped_column(StoredEnum(LedgerKind, 32))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    booking_id: Mapped[int | None] = mapped_column(index=True)
    client_id: Mapped[int | None] = mapped_column(index=True)
    payment_id: Mapped[int | None]
    # The balance an entry moves, for what the clinic holds for a client:
    # "gift_certificate:<id>", "store_credit:<id>", "package:<id>", "sale:<id>".
    account: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(120))  # the Stripe object
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)
