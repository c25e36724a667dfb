-- 0004: the transactional outbox. A service writes its business rows and an outbox row in one
-- transaction of its own database (a Herald store used for that service's data); the flusher
-- publishes pending rows to the bus store and marks them published (published_ms). The two
-- stores are separate databases, so a crash between publish and mark publishes a row twice:
-- the envelope's event_id lets consumers drop the duplicate.
CREATE TABLE herald_outbox (
    seq           INTEGER PRIMARY KEY,
    dest          TEXT    NOT NULL,             -- queue or topic name
    is_topic      INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    body          BLOB    NOT NULL,             -- the envelope
    created_ms    INTEGER NOT NULL,
    published_ms  INTEGER                       -- NULL while pending
) STRICT;

CREATE INDEX herald_outbox_pending ON herald_outbox (seq) WHERE published_ms IS NULL;
CREATE INDEX herald_outbox_published ON herald_outbox (published_ms) WHERE published_ms IS NOT NULL;
