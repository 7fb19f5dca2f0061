-- 009_rollout_slot.sql: the slot a rollout fills (docs/monitoring.md,
-- "Shadow deployment and promotion"). A shadow rollout walks its rings like
-- any other, but assigns devices' shadow slots and counts what those report;
-- promoting a succeeded one creates a production rollout of the same version,
-- whose id promoted_to keeps (NULL until then).
ALTER TABLE rollouts ADD COLUMN slot TEXT NOT NULL DEFAULT 'production'
    CHECK (slot IN ('production', 'shadow'));
ALTER TABLE rollouts ADD COLUMN promoted_to INTEGER REFERENCES rollouts(id);

-- One rollout per model and slot may be running or paused: a shadow
-- candidate may walk the rings while a production rollout of the model does.
DROP INDEX rollouts_one_active;
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (model_id, slot)
    WHERE state IN ('running', 'paused');
