-- A model on trial (`Models.trial`) decides for a share of the treated shoppers, the active model (or the rules)
-- for the rest. The share is a column of the model's row, NULL when it is not on trial. The CHECK keeps the share
-- inside (0, 1) and off the active row; the partial unique index allows one trial per store and is what `trial`,
-- read on every decision's model lookup, searches.
ALTER TABLE models ADD COLUMN trial_share DOUBLE PRECISION,
    ADD CONSTRAINT models_trial_share
        CHECK (trial_share IS NULL OR (NOT active AND trial_share > 0 AND trial_share < 1));
CREATE UNIQUE INDEX models_on_trial ON models (store_id) WHERE trial_share IS NOT NULL;
