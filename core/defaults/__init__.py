"""The core's default plugins: ordinary plugins every clinic gets, registered ``trylast``."""
