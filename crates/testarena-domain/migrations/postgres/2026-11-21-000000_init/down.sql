DROP TABLE workers;
DROP TABLE test_cases;
DROP TABLE tasks;
DROP TABLE queues;
DROP TABLE api_tokens;
DROP TABLE users;
