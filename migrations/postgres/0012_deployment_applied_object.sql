-- The ModelDeployment the hub applied for a deployment it placed (JSON,
-- before sealing): the hub's record is the desired state, so one missing
-- from its cluster (deleted there, or lost with the cluster's state) is
-- applied again from it. NULL for rows placed before this column, and
-- for ModelDeployments someone applied with kubectl.
-- Kept in step with ../sqlite/0012_deployment_applied_object.sql.
ALTER TABLE deployments ADD COLUMN applied_object TEXT;
