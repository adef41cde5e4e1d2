"""Reports for owners and managers: money, bookings, utilisation and liabilities, from the ledger and bookings."""
