"""The audit trail of health data: append-only, hash-chained per clinic, queryable by managers."""
