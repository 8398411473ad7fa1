-- A deployment's phase is one of modelfleet_core::crd::Phase's names, and
-- the row keeps what its cluster last reported: the ModelDeployment's
-- conditions (JSON) and endpoint, so that reading a deployment never calls
-- its cluster. Kept in step with ../sqlite/0009_deployment_phase_and_conditions.sql.
ALTER TABLE deployments ADD COLUMN conditions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE deployments ADD COLUMN endpoint TEXT;
ALTER TABLE deployments ADD CONSTRAINT deployments_phase CHECK (phase IN (
    'Pending', 'Planning', 'Scheduling', 'Loading', 'Ready', 'Degraded', 'Failed',
    'Terminating', 'Deleting'));
