-- 007_collection.sql: data collection (docs/monitoring.md, "Data collection
-- and datasets"): per-model policies, optionally narrowed to a ring, the
-- datasets they open and the samples devices upload into them.

-- A dataset belongs to the policy that opened it (model, ring_id; 0: the
-- model-wide policy). samples and labelled are kept by the insert that stores
-- a batch, in its transaction, so that the cap check reads no sample rows.
CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models(id),
    ring_id     INTEGER NOT NULL DEFAULT 0,    -- 0: model-wide
    created_at  INTEGER NOT NULL,
    samples     INTEGER NOT NULL DEFAULT 0,    -- rows in samples
    labelled    INTEGER NOT NULL DEFAULT 0     -- of which with a label
);
CREATE INDEX datasets_model ON datasets (model_id, id);

-- Collection is off unless a row here says otherwise.
CREATE TABLE collection_policies (
    model_id    INTEGER NOT NULL REFERENCES models(id),
    ring_id     INTEGER NOT NULL DEFAULT 0,    -- 0: model-wide; else rings(id)
    enabled     INTEGER NOT NULL DEFAULT 0,
    sample_rate REAL NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1),
    max_samples INTEGER NOT NULL CHECK (max_samples >= 1 AND max_samples <= 1000000),
    dataset_id  INTEGER REFERENCES datasets(id), -- opened when first enabled
    enabled_at  INTEGER,                         -- last switched on
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (model_id, ring_id)
);

-- One uploaded input: input_size IEEE-754 doubles (host byte order) in a
-- blob, and the class index the device learnt for it, if any.
CREATE TABLE samples (
    id          INTEGER PRIMARY KEY,
    dataset_id  INTEGER NOT NULL REFERENCES datasets(id),
    device_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,               -- model version that saw the input
    received_at INTEGER NOT NULL,
    input       BLOB NOT NULL,
    label       INTEGER                         -- NULL: unlabelled
);
CREATE INDEX samples_dataset ON samples (dataset_id, id);
