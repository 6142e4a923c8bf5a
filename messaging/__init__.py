"""The shared messaging and persistence runtime: broker, outbox, idempotent consumers, dead
letters, migrations and logging. Services build on it; it knows nothing of their domains."""
