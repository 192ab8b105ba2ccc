"""Plain logic of the stores service: no I/O."""
