-- 0003: topics. A publish to a topic copies the message into every subscribed queue in the same
-- transaction as the publish (one commit: all subscribers have it, or none).
CREATE TABLE herald_topics (
    name            TEXT    PRIMARY KEY,
    created_ms      INTEGER NOT NULL,
    published_total INTEGER NOT NULL DEFAULT 0,  -- messages published
    unrouted_total  INTEGER NOT NULL DEFAULT 0   -- published while nobody subscribed
) STRICT, WITHOUT ROWID;

CREATE TABLE herald_topic_subscriptions (
    topic       TEXT    NOT NULL REFERENCES herald_topics (name),
    queue       TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (topic, queue)
) STRICT, WITHOUT ROWID;
