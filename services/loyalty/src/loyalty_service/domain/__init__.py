"""Plain rules of the programme: no I/O."""
