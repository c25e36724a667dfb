-- 0011: the processed-events record of a UUIDv7 event id needs no age index.
--   Every effectively-once message writes one herald_processed_events row; its age index
--   (queue_id, processed_ms) was a third of that write. A UUIDv7 (what Herald mints) begins
--   with its creation time, so the primary key (queue_id, event_id) already orders those rows
--   by age: pruning takes the key range of ids created before the cutoff and deletes the rows
--   in it processed before the cutoff. Event ids of other versions (users may bring their
--   own) go to herald_processed_other, which keeps the age index.
CREATE TABLE herald_processed_other (
    queue_id      INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    processed_ms  INTEGER NOT NULL,
    PRIMARY KEY (queue_id, event_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX herald_processed_other_age ON herald_processed_other (queue_id, processed_ms);

INSERT INTO herald_processed_other (queue_id, event_id, type, processed_ms)
SELECT queue_id, event_id, type, processed_ms FROM herald_processed_events
WHERE substr(event_id, 15, 1) <> '7';

DELETE FROM herald_processed_events WHERE substr(event_id, 15, 1) <> '7';

DROP INDEX herald_processed_events_age;
