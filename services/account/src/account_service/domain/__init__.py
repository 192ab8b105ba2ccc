"""Account rules as plain functions and dataclasses: no I/O, unit-tested without servers."""
