"""UQCrowd-Log: records crowd workers' browser events and stores them in Elasticsearch."""
