-- 0013: per-queue message counts, kept by the store, so that queue stats cost the same for 10 or
-- 10,000,000 waiting messages (they counted the queue's rows on every call).
--   msg_count, msg_bytes  the rows and body bytes the queue stores (visible, delayed, leased,
--                         and past their retention until deleted); every insert and delete of
--                         a message changes them in its own transaction (store_sqlite_queue.c)
--   expiry_floor_ms       no row of the queue expires before it: inserts lower it, a complete
--                         retention sweep raises it; while it is in the future the stats need
--                         not look for expired rows. Empty queues: the largest integer.
ALTER TABLE herald_queues ADD COLUMN msg_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE herald_queues ADD COLUMN msg_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE herald_queues ADD COLUMN expiry_floor_ms INTEGER NOT NULL
    DEFAULT 9223372036854775807;

UPDATE herald_queues SET
    msg_count = (SELECT count(*) FROM herald_messages m
                 WHERE m.queue_id = herald_queues.queue_id),
    msg_bytes = (SELECT coalesce(sum(length(body)), 0) FROM herald_messages m
                 WHERE m.queue_id = herald_queues.queue_id),
    expiry_floor_ms = coalesce((SELECT min(expires_at_ms) FROM herald_messages m
                                WHERE m.queue_id = herald_queues.queue_id),
                               9223372036854775807);
