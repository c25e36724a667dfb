-- 0010: message seqs are handed out by Herald, not by AUTOINCREMENT.
--   0009 made seq AUTOINCREMENT so that a seq is never handed out twice (a lease id names its
--   message by seq). AUTOINCREMENT reads and rewrites sqlite_sequence on every INSERT
--   statement: a quarter of the cost of inserting a message. The writer now gives each new
--   row seq = max(the recorded high-water mark, max(seq)) + 1, read once per transaction, and
--   records the new mark in herald_meta at commit - the same guarantee, once per commit.
CREATE TABLE herald_meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO herald_meta (key, value)
VALUES ('message_seq', max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'herald_messages'), 0),
                           coalesce((SELECT max(seq) FROM herald_messages), 0)));

CREATE TABLE herald_messages_new (
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
