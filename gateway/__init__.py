"""Gateway: validates ``Reserve`` calls, appends them to Kafka, answers QUEUED."""
