"""clinic-saas: one Flask instance serving many aesthetic clinics."""

from core.app import create_app

__all__ = ["create_app"]
