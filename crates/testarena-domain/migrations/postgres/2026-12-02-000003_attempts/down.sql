DROP TABLE attempts;
ALTER TABLE queues DROP COLUMN no_cache;
ALTER TABLE queues DROP COLUMN attempt;
