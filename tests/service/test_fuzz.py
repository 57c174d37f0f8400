"""Property-based fuzzing of POST /logger/insert: never a 5xx; each event stored or quarantined, never both."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.queue_view import QueueView

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.text(max_size=10),
        "sequence_number": st.integers() | st.text(max_size=3),
        "log_type": st.sampled_from(["message", "mouse_event", "keyboard_event"]),
        "event_id": st.text(max_size=600) | st.integers(),
        "content": json_values,
    },
).flatmap(lambda base: st.dictionaries(st.text(max_size=8), json_values, max_size=3).map(lambda x: {**x, **base}))
json_bodies = (events | st.lists(events, max_size=8) | json_values).map(lambda v: json.dumps(v).encode())
bodies = json_bodies | st.binary(max_size=200) | json_bodies.map(lambda b: b[: len(b) // 2])

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(
    body=bodies, content_type=st.sampled_from(["text/plain", "application/json", "application/x-www-form-urlencoded"])
)
def test_every_event_is_either_stored_or_quarantined(client, queue: QueueView, body: bytes, content_type: str):
    before, quarantined_before = queue.depth(), queue.quarantine_depth()
    response = client.post("/logger/insert", data=body, content_type=content_type)
    assert response.status_code in (202, 400, 413), response.get_data()
    answer = response.get_json()
    stored, quarantined = queue.depth() - before, queue.quarantine_depth() - quarantined_before
    if response.status_code == 202:
        assert stored == answer["accepted"] >= 1
        assert quarantined == answer["rejected"]
    else:
        assert stored == 0
        assert quarantined == answer.get("rejected", 0)
        assert "\n" not in answer["error"]
