-- 002_slot_rollout.sql: the rollout that put a version in a device's slot.
-- An assignment re-signs every slot of a device, so each slot must remember
-- the rollout_id it was issued with; NULL for a direct assignment.
ALTER TABLE device_slots ADD COLUMN rollout_id TEXT;
