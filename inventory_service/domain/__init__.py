"""Pure inventory rules: no await, no SQL."""
