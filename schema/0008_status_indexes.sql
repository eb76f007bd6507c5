-- A task's phase, plan and feature keep a status or a count derived from their tasks, settled
-- in the transaction of every change (daemon/domain/work/derived.py). Indexed by the owner
-- alone, each settle read every task of the owner: a plan of 1,000 tasks cost each added task
-- ~1,000 row reads. With the status in the index, "is any of its tasks open?" is a few index
-- seeks, and a feature's completed tasks are counted in the index alone.
DROP INDEX tasks_plan;
DROP INDEX tasks_phase;
DROP INDEX tasks_feature;
CREATE INDEX tasks_plan ON tasks (plan_id, status);
CREATE INDEX tasks_phase ON tasks (phase_id, status);
CREATE INDEX tasks_feature ON tasks (feature_id, status);
