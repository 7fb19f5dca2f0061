-- 008_triggers.sql: trigger rules and the alerts the monitor raises from
-- them (docs/monitoring.md, "Trigger rules, alerts and actions";
-- server/monitor.c evaluates, server/db_monitor.c holds the SQL).
--
-- A rule watches one model (optionally one ring) and compares the aggregate
-- of a metric across devices with a threshold. Times are Unix milliseconds.

CREATE TABLE triggers (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models (id),
    ring_id     INTEGER REFERENCES rings (id),  -- NULL: devices of every ring
    metric      TEXT NOT NULL,                  -- a metric name (server/metric.h)
    aggregation TEXT NOT NULL CHECK (aggregation IN ('mean', 'max', 'min', 'median')),
    op          TEXT NOT NULL CHECK (op IN ('above', 'below')),
    threshold   REAL NOT NULL,
    window_s    INTEGER NOT NULL CHECK (window_s >= 1),     -- seconds of windows evaluated
    min_devices INTEGER NOT NULL CHECK (min_devices >= 1),  -- devices with a value needed
    cooldown_s  INTEGER NOT NULL CHECK (cooldown_s >= 0),   -- seconds between two alerts
    action      TEXT NOT NULL CHECK (action IN ('retrain', 'pause_rollout', 'rollback', 'none')),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL
);
CREATE INDEX triggers_model ON triggers (model_id);

-- One row per time a rule fired for a model version. Append-mostly: only
-- the move from firing to resolved (state, resolved_at) and the record of
-- what the action did (action_result) change a row; rows are never deleted,
-- so an alert outlives the rule that raised it (trigger_id has no foreign
-- key for that reason). model, ring and the rule's terms are copied as they
-- were when it fired.
CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY,
    trigger_id    INTEGER NOT NULL,
    model         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    ring          TEXT,                  -- the rule's ring name; NULL for every ring
    metric        TEXT NOT NULL,
    value         REAL NOT NULL,         -- the aggregate that crossed the threshold
    threshold     REAL NOT NULL,
    op            TEXT NOT NULL,
    devices       INTEGER NOT NULL,      -- devices whose values were aggregated
    state         TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    fired_at      INTEGER NOT NULL,
    resolved_at   INTEGER,               -- NULL while firing
    action        TEXT NOT NULL,
    action_result TEXT,                  -- what the action did; NULL until it ran
    CHECK ((state = 'firing') = (resolved_at IS NULL))
);
-- Dedupe: at most one firing alert per rule and model version.
CREATE UNIQUE INDEX alerts_one_firing ON alerts (trigger_id, version) WHERE state = 'firing';
-- The last alert of a rule and version (cooldown), and a rule's open alerts.
CREATE INDEX alerts_trigger ON alerts (trigger_id, version, fired_at);
-- Listing, newest first, by model.
CREATE INDEX alerts_model ON alerts (model, fired_at);
CREATE INDEX alerts_fired ON alerts (fired_at);

CREATE TRIGGER alerts_append_mostly
BEFORE UPDATE OF id, trigger_id, model, version, ring, metric, value, threshold, op, devices,
                 fired_at, action ON alerts
BEGIN SELECT RAISE(ABORT, 'an alert only changes its state and action result'); END;
CREATE TRIGGER alerts_resolved_final
BEFORE UPDATE OF state ON alerts WHEN OLD.state = 'resolved' AND NEW.state != 'resolved'
BEGIN SELECT RAISE(ABORT, 'a resolved alert stays resolved'); END;
CREATE TRIGGER alerts_no_delete BEFORE DELETE ON alerts
BEGIN SELECT RAISE(ABORT, 'alerts are kept'); END;
