-- 001_init.sql: registry, fleet, tokens and audit log.
-- Times are Unix milliseconds (INTEGER). Applied once, in a transaction, by
-- db_migrate(); PRAGMA user_version records the last applied migration.

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

-- A version is immutable once inserted: manifest bytes and signature are what
-- devices verify, the artifact lives in the content-addressed store by sha256.
CREATE TABLE model_versions (
    id            INTEGER PRIMARY KEY,
    model_id      INTEGER NOT NULL REFERENCES models(id),
    version       INTEGER NOT NULL CHECK (version >= 1),
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    backend       TEXT NOT NULL,
    manifest      BLOB NOT NULL,
    signature     TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (model_id, version)
);
CREATE TRIGGER model_versions_immutable BEFORE UPDATE ON model_versions
BEGIN SELECT RAISE(ABORT, 'model versions are immutable'); END;

CREATE TABLE rings (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    position    INTEGER NOT NULL,
    selector    TEXT NOT NULL DEFAULT '{}',   -- JSON object of tag = value
    created_at  INTEGER NOT NULL
);
INSERT INTO rings (name, position, selector, created_at) VALUES ('default', 1000000, '{}', 0);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    class         TEXT NOT NULL DEFAULT 'default',
    ring_id       INTEGER REFERENCES rings(id),  -- explicit membership; NULL: by selector or default
    tags          TEXT NOT NULL DEFAULT '{}',    -- JSON object
    online        INTEGER NOT NULL DEFAULT 0,
    last_seen     INTEGER,
    enrolled_at   INTEGER NOT NULL,
    desired_seq   INTEGER NOT NULL DEFAULT 0,
    desired       BLOB,                          -- signed envelope last issued
    decommissioned_at INTEGER
);

-- One row per device and slot: what the server wants there and what the
-- device last said about it.
CREATE TABLE device_slots (
    device_id     TEXT NOT NULL REFERENCES devices(id),
    slot          TEXT NOT NULL,
    version_id    INTEGER NOT NULL REFERENCES model_versions(id),
    state         TEXT NOT NULL DEFAULT 'pending',
    reason        TEXT,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (device_id, slot)
);

-- What each device reports running, per slot, whatever the server wanted.
CREATE TABLE device_reported (
    device_id     TEXT NOT NULL REFERENCES devices(id),
    slot          TEXT NOT NULL,
    model         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (device_id, slot)
);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE enroll_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    class       TEXT,
    uses_left   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Append-only: the triggers refuse any change to a written row.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    actor     TEXT NOT NULL,       -- "token:3 (ops)", "device:cam-1", "anonymous"
    action    TEXT NOT NULL,       -- "POST /api/v1/models/{name}/versions"
    target    TEXT NOT NULL,       -- the request path
    outcome   TEXT NOT NULL,       -- "ok", "refused", "failed", "aborted"
    status    INTEGER NOT NULL,    -- HTTP status answered
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The ring each device is in: its explicit ring, else the first ring (by
-- position) whose non-empty tag selector its tags match, else 'default'.
CREATE VIEW device_rings AS
SELECT d.id AS device_id,
       COALESCE(d.ring_id,
                (SELECT r.id FROM rings r
                  WHERE r.selector != '{}'
                    AND NOT EXISTS (SELECT 1 FROM json_each(r.selector) s
                                     WHERE json_extract(d.tags, '$."' || s.key || '"') IS NOT s.value)
                  ORDER BY r.position, r.id LIMIT 1),
                (SELECT id FROM rings WHERE name = 'default')) AS ring_id
  FROM devices d;
