"""Message types and topology shared by every service: pure data, no I/O."""
