-- notification_service: refusals of a mail counted apart from its attempts.

-- How many times the SMTP server refused the mail itself (5xx to its recipient or content).
-- Only these count towards giving a mail up; `attempts` also counts outages (server down,
-- bad credentials), which never fail a mail. Attempts made before this column existed are not
-- known to be refusals, so every existing mail starts at 0.
ALTER TABLE mails ADD COLUMN rejections int NOT NULL DEFAULT 0;
ALTER TABLE mails ADD CONSTRAINT mails_rejections
    CHECK (rejections >= 0 AND rejections <= attempts);
