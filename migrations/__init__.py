"""The database migrations (Alembic, through Flask-Migrate), shipped inside the installed package."""
