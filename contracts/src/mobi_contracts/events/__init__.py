"""Event classes, grouped by the service that produces them."""
