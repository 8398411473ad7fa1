-- Kept in step with ../postgres/0010_budget_alert_redelivery.sql.
ALTER TABLE budget_alerts ADD COLUMN next_attempt_at TEXT;
