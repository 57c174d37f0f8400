"""A study's stored events in Elasticsearch, for the command line (`uqcrowd-log`) and the dashboard alike:
which events (selection), in which file format (formats), their sessions' reports (sessions), and what
changes them: import, a worker's withdrawal (withdraw), the retention period (retention)."""
