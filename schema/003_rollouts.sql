-- 003_rollouts.sql: rollouts of a model version through ordered rings, the
-- stage of each ring, and the devices each rollout assigned
-- (docs/rollouts.md; server/db_rollouts.c reads and writes them, the engine
-- in server/rollout.c drives them). Times are Unix milliseconds.

CREATE TABLE rollouts (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models(id),
    version_id  INTEGER NOT NULL REFERENCES model_versions(id),
    state       TEXT NOT NULL DEFAULT 'draft'
                CHECK (state IN ('draft', 'running', 'paused', 'succeeded', 'failed',
                                 'aborted', 'rolled_back')),
    reason      TEXT,                 -- why it is in its state, when it matters
    policy      TEXT NOT NULL,        -- JSON, every member present (defaults filled in)
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,              -- first draft -> running
    finished_at INTEGER               -- entered succeeded, failed, aborted or rolled_back
);
-- One rollout per model may be running or paused: starting or resuming a
-- second one fails on this index.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (model_id)
    WHERE state IN ('running', 'paused');
CREATE INDEX rollouts_state ON rollouts (state);

-- The rings of a rollout in the order it goes through them (position 1 first).
CREATE TABLE rollout_rings (
    rollout_id      INTEGER NOT NULL REFERENCES rollouts(id),
    position        INTEGER NOT NULL CHECK (position >= 1),
    ring_id         INTEGER NOT NULL REFERENCES rings(id),
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'soaking', 'succeeded', 'failed')),
    reason          TEXT,
    started_at      INTEGER,          -- entered running (again, after a resume)
    soak_started_at INTEGER,          -- entered soaking
    finished_at     INTEGER,          -- entered succeeded or failed
    PRIMARY KEY (rollout_id, position),
    UNIQUE (rollout_id, ring_id)
);

-- Every device a rollout assigned its version to, in the ring it was
-- assigned through (moved when the device shows up in another ring of the
-- rollout). previous_version_id is the version the device's production slot
-- had committed when the rollout first took it, NULL when it had none: what
-- rollback and abort give back. The device action is derived from
-- device_slots while the slot holds this rollout's assignment; final_state
-- overrides it once the rollout has decided (timeout, rollback, abort).
CREATE TABLE rollout_devices (
    rollout_id          INTEGER NOT NULL REFERENCES rollouts(id),
    device_id           TEXT NOT NULL REFERENCES devices(id),
    ring_id             INTEGER NOT NULL REFERENCES rings(id),
    previous_version_id INTEGER REFERENCES model_versions(id),
    assigned_at         INTEGER NOT NULL,
    final_state         TEXT CHECK (final_state IN ('failed', 'rolled_back', 'cancelled')),
    reason              TEXT,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_ring ON rollout_devices (rollout_id, ring_id);
