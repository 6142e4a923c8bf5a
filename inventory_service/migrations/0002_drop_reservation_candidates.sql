-- order.placed no longer takes the organization's advisory lock: batches lock bin items in id
-- order instead (see adapters/stock.py), so the one-round-trip helper of 0001 is unused.
DROP FUNCTION reservation_candidates(text, text, text[]);
