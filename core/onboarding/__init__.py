"""A clinic's way onto the instance: its document through the API, its readiness, opening and retiring."""
