"""The services a clinic offers, where, by whom, and the rooms or devices they need."""
