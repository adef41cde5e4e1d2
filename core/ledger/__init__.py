"""The clinic's ledger, the ground floor of money: payments, sales and bookings all write it here.

``record`` adds a movement; ``balance`` (``balances`` for several accounts at once) and
``count`` derive what an account holds.
Nothing else builds a ledger entry, and the ledger imports none of its writers.
"""

from core.ledger.models import LedgerEntry, LedgerKind
from core.ledger.services import SIGN, balance, balances, count, record

__all__ = ["SIGN", "LedgerEntry", "LedgerKind", "balance", "balances", "count", "record"]
