"""finance_service: the checkout saga of SPEC §6 (seed 003), its durable timeouts and replay."""
