-- 0007: correlation tracing. A message whose envelope carries a correlation_id keeps it (with its
-- event_id and type) on its row; herald_trace records what happened to such messages - sent,
-- acked, retried, dead-lettered, by which handler - so `herald trace ID` can show a whole chain
-- in time order. Pruned after 7 days.
ALTER TABLE herald_messages ADD COLUMN correlation_id TEXT;
ALTER TABLE herald_messages ADD COLUMN event_id TEXT;
ALTER TABLE herald_messages ADD COLUMN event_type TEXT;

CREATE TABLE herald_trace (
    seq             INTEGER PRIMARY KEY,
    correlation_id  TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL,
    what            TEXT    NOT NULL,   -- sent, acked, retried, dead_lettered
    queue           TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    handler         TEXT    NOT NULL,   -- "" for sends
    attempt         INTEGER NOT NULL,
    detail          TEXT    NOT NULL    -- the error of a retry, ""
) STRICT;

CREATE INDEX herald_trace_correlation ON herald_trace (correlation_id, at_ms, seq);
CREATE INDEX herald_trace_age ON herald_trace (at_ms);
