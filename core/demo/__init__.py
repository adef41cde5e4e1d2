"""The demo: the seed clinics with a marked demo menu, paid through the local Stripe server."""
