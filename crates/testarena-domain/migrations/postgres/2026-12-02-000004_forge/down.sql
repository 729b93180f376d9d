DROP TRIGGER queues_delivery_event ON queues;
DROP FUNCTION queues_delivery_event();
DROP TABLE delivery_events;
DROP TABLE deliveries;
DROP TABLE hook_deliveries;
ALTER TABLE queues DROP COLUMN triggered_by;
