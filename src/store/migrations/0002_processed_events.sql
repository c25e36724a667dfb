-- 0002: effectively-once processing. A row says: the handler of queue_id has processed the event
-- event_id, in the same transaction that acked its message and applied its effects. Pruned after
-- the consumer's processed_retention (default 7 days).
CREATE TABLE herald_processed_events (
    queue_id      INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    processed_ms  INTEGER NOT NULL,
    PRIMARY KEY (queue_id, event_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX herald_processed_events_age ON herald_processed_events (processed_ms);
