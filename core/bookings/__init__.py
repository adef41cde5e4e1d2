"""Bookings: availability, the booking lifecycle driven by each clinic's policy, and self-service."""
