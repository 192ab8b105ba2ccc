"""Plain logic of the notify service (no I/O)."""
