"""Messages to clients (appointment reminders) through a database outbox, by email and SMS."""
