-- 0001: queues and their messages. Every Herald table is named herald_*: user SQL run through
-- herald_tx_exec() shares the database and may not touch them (an authorizer enforces it).
-- A message row is VISIBLE when visible_at_ms <= now, LEASED when lease_tag IS NOT NULL and
-- visible_at_ms > now (the lease expires by the clock passing visible_at_ms: no sweep needed),
-- DELAYED when lease_tag IS NULL and visible_at_ms > now. attempts counts deliveries (leases).
CREATE TABLE herald_queues (
    queue_id            INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    uuid                TEXT    NOT NULL,
    created_ms          INTEGER NOT NULL,
    modified_ms         INTEGER NOT NULL,
    delivery_delay_s    INTEGER NOT NULL,
    retention_s         INTEGER NOT NULL,
    max_message_bytes   INTEGER NOT NULL,
    max_retries         INTEGER NOT NULL,
    retry_delay_s       INTEGER NOT NULL,
    dead_letter_queue   TEXT    NOT NULL DEFAULT '',
    paused              INTEGER NOT NULL DEFAULT 0,
    sent_total          INTEGER NOT NULL DEFAULT 0,
    acked_total         INTEGER NOT NULL DEFAULT 0,
    retried_total       INTEGER NOT NULL DEFAULT 0,
    dead_lettered_total INTEGER NOT NULL DEFAULT 0,
    deleted_total       INTEGER NOT NULL DEFAULT 0,
    expired_total       INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Small columns first so scans over state never touch the body's pages.
CREATE TABLE herald_messages (
    seq            INTEGER PRIMARY KEY,
    queue_id       INTEGER NOT NULL,
    visible_at_ms  INTEGER NOT NULL,
    lease_tag      INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    expires_at_ms  INTEGER NOT NULL,
    sent_ms        INTEGER NOT NULL,
    content_type   INTEGER NOT NULL,
    id             TEXT    NOT NULL,
    dead_from      TEXT,
    dead_attempts  INTEGER,
    last_error     TEXT,
    body           BLOB    NOT NULL
) STRICT;

-- Dequeue: the visible messages of one queue in delivery order (mandatory, DESIGN.md §8).
CREATE INDEX herald_messages_ready ON herald_messages (queue_id, visible_at_ms);
-- Retention sweep.
CREATE INDEX herald_messages_expiry ON herald_messages (expires_at_ms);
