-- A model on trial (`Models.trial`) decides for a share of the treated shoppers, the active model (or the rules)
-- for the rest. The share is a column of the model's row, NULL when it is not on trial, added by this migration's
-- Python step (schema.py, STEPS) with a CHECK that keeps it inside (0, 1) and off the active row: SQLite has no
-- ADD COLUMN IF NOT EXISTS for a data directory made before migrations were recorded. The partial unique index
-- allows one trial per store and is what `trial`, read on every decision's model lookup, searches.
CREATE UNIQUE INDEX IF NOT EXISTS models_on_trial ON models (store_id) WHERE trial_share IS NOT NULL;
