"""Consumer lag from the broker (not from the consumers themselves): see lag_exporter.main."""
