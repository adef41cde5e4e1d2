"""The hosted pages where clients book, pay up front and manage their visit: see routes.py."""
