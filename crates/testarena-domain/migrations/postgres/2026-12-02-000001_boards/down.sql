DROP INDEX queues_ran_on;
ALTER TABLE queues DROP COLUMN ran_on;
ALTER TABLE queues DROP COLUMN board_tags;
ALTER TABLE queues DROP COLUMN board;
DROP TABLE boards;
