"""Payments: Stripe on each clinic's own account, its webhooks, and the clinic's money ledger."""
