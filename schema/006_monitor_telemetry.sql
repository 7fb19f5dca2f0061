-- 006_monitor_telemetry.sql: what a metrics window says about the model
-- meeting real data (docs/monitoring.md, "Telemetry window"), and per-minute
-- rollups per model version x ring that charts and long queries read.
--
-- The scalar columns are what trigger rules and gates compare; the per-feature
-- PSI values and the confusion matrix stay in `detail` (JSON text) for people
-- and charts. Every new column is NULL when the window did not carry it.

ALTER TABLE telemetry_windows ADD COLUMN drift REAL;          -- max PSI over input features
ALTER TABLE telemetry_windows ADD COLUMN drift_output REAL;   -- max PSI over outputs
ALTER TABLE telemetry_windows ADD COLUMN confidence REAL;     -- mean winning output, 0..1
ALTER TABLE telemetry_windows ADD COLUMN correct INTEGER;     -- feedback that was right
ALTER TABLE telemetry_windows ADD COLUMN shadow_model TEXT;   -- shadow model name
ALTER TABLE telemetry_windows ADD COLUMN shadow_version INTEGER;
ALTER TABLE telemetry_windows ADD COLUMN shadow_inferences INTEGER;
ALTER TABLE telemetry_windows ADD COLUMN shadow_errors INTEGER;
ALTER TABLE telemetry_windows ADD COLUMN shadow_agreement REAL; -- share agreeing with production
ALTER TABLE telemetry_windows ADD COLUMN shadow_feedback INTEGER;
ALTER TABLE telemetry_windows ADD COLUMN shadow_accuracy REAL;
ALTER TABLE telemetry_windows ADD COLUMN detail TEXT;          -- {"psi": {...}, "confusion": [[...]]}
-- The ring of the device when the window was received (0: in no ring); the
-- rollup key, so that history keeps the ring it was measured in.
ALTER TABLE telemetry_windows ADD COLUMN ring_id INTEGER NOT NULL DEFAULT 0;

-- One row per model version x ring x minute (of received_at). Sums and counts,
-- so that rollups merge exactly: a mean is sum / n, an accuracy correct / feedback.
CREATE TABLE telemetry_rollups (
    model             TEXT NOT NULL,
    version           INTEGER NOT NULL,
    ring_id           INTEGER NOT NULL,      -- 0: devices in no ring
    minute            INTEGER NOT NULL,      -- Unix ms, a multiple of 60000
    windows           INTEGER NOT NULL DEFAULT 0,
    inferences        INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    feedback          INTEGER NOT NULL DEFAULT 0,
    correct           INTEGER NOT NULL DEFAULT 0,
    p99_sum           REAL NOT NULL DEFAULT 0, -- over windows with latency
    p99_max           REAL,
    latency_windows   INTEGER NOT NULL DEFAULT 0,
    drift_sum         REAL NOT NULL DEFAULT 0,
    drift_max         REAL,
    drift_windows     INTEGER NOT NULL DEFAULT 0,
    confidence_sum    REAL NOT NULL DEFAULT 0,
    confidence_windows INTEGER NOT NULL DEFAULT 0,
    shadow_inferences INTEGER NOT NULL DEFAULT 0,
    shadow_agreed     REAL NOT NULL DEFAULT 0, -- sum of agreement x shadow_inferences
    shadow_feedback   INTEGER NOT NULL DEFAULT 0,
    shadow_correct    REAL NOT NULL DEFAULT 0, -- sum of shadow_accuracy x shadow_feedback
    PRIMARY KEY (model, version, ring_id, minute)
) WITHOUT ROWID;
CREATE INDEX telemetry_rollups_minute ON telemetry_rollups (minute);
