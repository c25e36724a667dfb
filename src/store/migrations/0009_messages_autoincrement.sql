-- 0009: rebuild herald_messages (SQLite cannot alter a primary key), and re-key an index:
--   * seq becomes AUTOINCREMENT. A plain INTEGER PRIMARY KEY reuses the highest seq once that
--     row is deleted, and a lease id names its message by seq: a repeated or late ack of an
--     acked message could then delete the next message sent. With AUTOINCREMENT a seq is never
--     handed out twice.
--   * the trace columns of 0007 move before the body, with the other small columns, so reading
--     them never walks a large body's overflow pages.
CREATE TABLE herald_messages_new (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
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
    correlation_id TEXT,
    event_id       TEXT,
    event_type     TEXT,
    body           BLOB    NOT NULL
) STRICT;

INSERT INTO herald_messages_new (seq, queue_id, visible_at_ms, lease_tag, attempts,
    expires_at_ms, sent_ms, content_type, id, dead_from, dead_attempts, last_error,
    correlation_id, event_id, event_type, body)
SELECT seq, queue_id, visible_at_ms, lease_tag, attempts, expires_at_ms, sent_ms, content_type,
    id, dead_from, dead_attempts, last_error, correlation_id, event_id, event_type, body
FROM herald_messages;

DROP TABLE herald_messages;
ALTER TABLE herald_messages_new RENAME TO herald_messages;
CREATE INDEX herald_messages_ready ON herald_messages (queue_id, visible_at_ms);

-- The prune of processed events is per queue (queue_id = ? AND processed_ms < ?): an index on
-- processed_ms alone never served it. Same write cost, now used.
DROP INDEX herald_processed_events_age;
CREATE INDEX herald_processed_events_age ON herald_processed_events (queue_id, processed_ms);
