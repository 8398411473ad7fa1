-- When a pending budget alert may next be posted: after a pass whose
-- attempts ran out (it is tried again later, not given up on), or while a
-- delivery holds it (so no other pass posts it at the same time). NULL:
-- at once. Kept in step with ../sqlite/0010_budget_alert_redelivery.sql.
ALTER TABLE budget_alerts ADD COLUMN next_attempt_at TIMESTAMPTZ;
