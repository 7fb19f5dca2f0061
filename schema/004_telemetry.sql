-- 004_telemetry.sql: raw telemetry windows, one row per window a device
-- published on edgefleet/v1/devices/{id}/telemetry (server/telemetry.c).
-- Times are Unix milliseconds; received_at is the server's clock, the one
-- queries, gates and retention go by; window_start is the device's.
-- No foreign key to devices: windows are history that stays until retention
-- removes it, whatever becomes of the device row. Windows of devices that are
-- not enrolled are not stored (db_telemetry_insert).
-- Per-minute rollups per model version x ring come with the monitor.

CREATE TABLE telemetry_windows (
    id            INTEGER PRIMARY KEY,
    device_id     TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    window_s      REAL NOT NULL CHECK (window_s >= 0),
    model         TEXT,                 -- production model name; NULL when none served
    version       INTEGER,              -- its version; NULL with model
    inferences    INTEGER NOT NULL CHECK (inferences >= 0),
    errors        INTEGER NOT NULL CHECK (errors >= 0 AND errors <= inferences),
    p50           REAL,                 -- latency, ms; NULL when no inference was timed
    p95           REAL,
    p99           REAL,
    max_ms        REAL,
    accuracy      REAL,                 -- correct / feedback; NULL without feedback
    feedback      INTEGER NOT NULL CHECK (feedback >= 0),
    rss_bytes     INTEGER,              -- NULL when the device could not tell
    cpu_s         REAL NOT NULL CHECK (cpu_s >= 0),
    CHECK ((model IS NULL) = (version IS NULL))
);
-- A device's history, newest first.
CREATE INDEX telemetry_windows_device ON telemetry_windows (device_id, received_at);
-- A model version's windows since a time: rollout gates and queries by model.
CREATE INDEX telemetry_windows_model ON telemetry_windows (model, version, received_at);
-- Retention deletes by age; unfiltered queries walk it newest first.
CREATE INDEX telemetry_windows_received ON telemetry_windows (received_at);
