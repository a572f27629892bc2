"""Subscription secrets at rest: encrypted with the credentials key (``SWITCHBOARD_SECRET_KEY``
or ``<data_dir>/secret.key``), like OAuth2 tokens."""

from __future__ import annotations

from switchboard.config import Config
from switchboard.credentials import SecretBox, load_secret_box

_boxes: dict[tuple[str, ...], SecretBox] = {}


def secret_box(config: Config) -> SecretBox:
    s = config.settings
    key = (
        s.secret_key.get_secret_value() if s.secret_key is not None else "",
        str(s.data_dir.resolve()),
        *(k.get_secret_value() for k in s.secret_key_previous),
    )
    box = _boxes.get(key)
    if box is None:
        box = _boxes[key] = load_secret_box(s)
    return box
