"""The durable queue between the backends and Elasticsearch: a Redis Stream with a consumer group,
its counters and its side lists. Each process imports the part it plays:

- keys.py: the key names; entries.py: the entry format (one request's events per entry);
- producer.py: the backends' side (append, quarantine, count, writable?);
- consumer.py: the indexer's side (read, claim, settle, faults);
- side_lists.py: dead letters and quarantine (read, replay, a withdrawn worker's records out);
- snapshot.py: every figure the metrics need, in one round trip;
- lua/: the scripts that must run atomically in Redis, one file each; scripts.py loads them.
"""
