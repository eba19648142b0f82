-- The recovery report and the audiences read the carts abandoned in a window: their abandonment time, until now
-- only inside the stored cart, is a column indexed per store, so that a window is read without decoding the
-- store's whole history. The column is added and filled for the carts already stored by this migration's Python
-- step (schema.py, STEPS), run just before this in the same transaction: SQL cannot read the msgpack body, and
-- SQLite has no ADD COLUMN IF NOT EXISTS for a data directory made before migrations were recorded.
CREATE INDEX IF NOT EXISTS carts_by_abandonment ON carts (store_id, abandoned_us);
