"""UQCrowd-Log: records crowd workers' browser events and stores them in Elasticsearch."""

# Each deployment is a release directory named after it (roles/logger: version and a checksum of the files).
__version__ = "0.14.0"
