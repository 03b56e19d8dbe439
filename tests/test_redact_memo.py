"""The intake's remembered redaction: a text seen before a secret was registered is masked after it."""

from __future__ import annotations

import msgspec

from bot.alerts.webhook import parse_webhook, redact_webhook
from bot.core.redact import MASK, RedactMemo, redact, register_secret


def notification(instance: str) -> bytes:
    alert = {"status": "firing", "labels": {"alertname": "Leak", "instance": instance}, "fingerprint": "f1"}
    body = {"version": "4", "groupKey": "{}:{}", "status": "firing", "alerts": [alert]}
    return msgspec.json.encode(body)


def test_a_text_remembered_before_a_secret_is_registered_is_masked_after_it():
    value = "db-7 via s3cr3t-remembered-value"
    first = parse_webhook(notification(value))
    redact_webhook(first)
    assert first.alerts[0].labels["instance"] == value  # nothing secret in it yet: remembered as it is
    register_secret("s3cr3t-remembered-value")
    again = parse_webhook(notification(value))
    redact_webhook(again)
    assert again.alerts[0].labels["instance"] == f"db-7 via {MASK}"


def test_remembered_results_are_the_redactors_and_the_memory_stays_bounded():
    memo = RedactMemo(redact, size=8, longest=40)
    texts = [f"password=hunter{n}" for n in range(20)] + ["x" * 100]
    assert [memo(t) for t in texts] == [redact(t) for t in texts]
    assert memo.values({"a": texts[0], "b": "plain"}) == {"a": redact(texts[0]), "b": "plain"}
    assert len(memo._known) <= 8
