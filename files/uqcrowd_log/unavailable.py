"""The one error a store raises when it cannot take events now (Redis refusing or unreachable,
Elasticsearch down or busy): a backend answers 503 with Retry-After, the indexer waits and retries.
Its own module, beneath both stores, so that a backend of the queue never loads Elasticsearch's client."""


class StoreUnavailable(Exception):
    """The store did not answer, or answered that it cannot take writes now."""
