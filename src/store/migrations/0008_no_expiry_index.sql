-- 0008: drop the retention index. Maintaining it cost every send and every ack a third b-tree
-- update (W1 +20%, W2 +8% without it); the retention sweep now scans the table on the reader
-- connection (in seq order, resumable) and deletes what it found on the writer, once a minute.
DROP INDEX herald_messages_expiry;
