"""The researchers' dashboard: a live, read-only view of the studies, behind a login, in a process of
its own (never the ingest backends). web.py's sibling: it reads Elasticsearch as the reader user."""
