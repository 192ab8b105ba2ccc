"""Plain rules of the VAS service (no I/O): the catalogue, periods, state and limits."""
