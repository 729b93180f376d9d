DROP TRIGGER queues_notify ON queues;
DROP FUNCTION testarena_queue_notify();
DROP TABLE log_chunks;
