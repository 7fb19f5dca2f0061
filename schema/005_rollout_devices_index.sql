-- 005_rollout_devices_index.sql: the engine looks up a device's earlier
-- rollouts on every tick (db_rollout_track); without this index that lookup
-- scanned all of rollout_devices per device, making a tick quadratic
-- (1.6 s at 10,000 devices, measured by tests/bench/engine_tick.c).
CREATE INDEX rollout_devices_device ON rollout_devices (device_id);
