"""Inventory service: bins, stock ledger and reservations driven by order events."""
