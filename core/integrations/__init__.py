"""Outbound webhooks: events sent, signed, to the systems a clinic registers."""
