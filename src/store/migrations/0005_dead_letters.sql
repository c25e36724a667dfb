-- 0005: dead-letter tooling. herald_attempts keeps why each delivery of a message failed (a
-- retry with its error, or a lease that expired unsettled), keyed by the message id, which a
-- message keeps into its dead-letter queue; `herald dlq show` prints it. Pruned after 14 days.
-- herald_redrive_audit records every redrive: who, when, which message, where to, what edit.
CREATE TABLE herald_attempts (
    message_id  TEXT    NOT NULL,
    queue       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    error       TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL
) STRICT;

CREATE INDEX herald_attempts_message ON herald_attempts (message_id, attempt);
CREATE INDEX herald_attempts_age ON herald_attempts (at_ms);

CREATE TABLE herald_redrive_audit (
    audit_id    INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    dlq         TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    to_queue    TEXT    NOT NULL,
    edit        TEXT    NOT NULL      -- "" when the body was not changed
) STRICT;
