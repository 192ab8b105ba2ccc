"""Kafka plumbing: publishing, topic creation, batch consumers with inbox and dead letters."""
