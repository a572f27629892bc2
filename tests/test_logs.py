"""The redaction processor on its own (the whole pipeline: tests/credentials/test_logs.py)."""

from __future__ import annotations

from switchboard.logs import MASK, redact_secrets


def test_secret_keys_and_secrets_in_text_are_masked_and_the_rest_kept() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "call_failed",
            "request_id": "req-1",
            "api_key": "k-123456789",
            "Client_Secret": "s",
            "error": "401 from provider: Authorization: BEARER abcdef123456 refused",
            "detail": {"refresh_token": "rt-1", "nested": ["password=hunter22222", 3]},
            "path": "/users/u1",
            "status": 200,
            "duration_ms": 1.5,
            "retry": None,
        },
    )
    assert event["api_key"] == MASK and event["Client_Secret"] == MASK
    assert event["error"] == f"401 from provider: Authorization: BEARER {MASK} refused"
    assert event["detail"] == {"refresh_token": MASK, "nested": [f"password={MASK}", 3]}
    assert event["event"] == "call_failed" and event["request_id"] == "req-1"
    assert event["path"] == "/users/u1" and event["status"] == 200
    assert event["duration_ms"] == 1.5 and event["retry"] is None
