"""Background work: reminders to send and holds to expire, on Celery or in the web process."""
