"""Encryption of stored secrets (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from switchboard.settings import Settings

log = structlog.get_logger("switchboard.credentials")

KEY_FILE = "secret.key"


class SecretKeyError(Exception):
    """Stored secrets cannot be decrypted with this key (SWITCHBOARD_SECRET_KEY changed?)."""


def _derive(material: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(material)


def _fernet(material: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(material, b"switchboard/fernet")))


class SecretBox:
    """Encrypts and decrypts secrets at rest; any string is accepted as the key material (it is
    stretched with HKDF, so a Fernet key, a passphrase or random bytes all work).

    Rotation: ``previous`` keys still decrypt (and their fingerprints still match) but only
    ``key`` encrypts, so secrets move to the new key as they are rewritten, or all at once with
    :meth:`rotate` (``switchboard credentials rekey``)."""

    def __init__(self, key: str, previous: Sequence[str] = ()) -> None:
        keys = [key.encode(), *(k.encode() for k in previous)]
        self._fernet = MultiFernet([_fernet(material) for material in keys])
        self._mac_keys = [_derive(material, b"switchboard/fingerprint") for material in keys]

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyError(SecretKeyError.__doc__) from None

    def rotate(self, ciphertext: str) -> str:
        """The same secret encrypted under the current key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError(SecretKeyError.__doc__) from None

    def fingerprint(self, value: str) -> str:
        """A keyed hash: tells whether a secret changed without storing anything reversible."""
        return self._fingerprint(self._mac_keys[0], value)

    def fingerprints(self, value: str) -> list[str]:
        """``value``'s fingerprint under every key, the current one first."""
        return [self._fingerprint(mac_key, value) for mac_key in self._mac_keys]

    @staticmethod
    def _fingerprint(mac_key: bytes, value: str) -> str:
        return hmac.new(mac_key, value.encode(), hashlib.sha256).hexdigest()


def load_secret_box(settings: Settings) -> SecretBox:
    """The key from ``SWITCHBOARD_SECRET_KEY``, else ``<data_dir>/secret.key`` (created with mode
    0600 on first run, with a warning: losing that file means re-authorising connections)."""
    previous = [k.get_secret_value() for k in settings.secret_key_previous]
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return SecretBox(settings.secret_key.get_secret_value(), previous)
    return SecretBox(_key_file(settings.data_dir / KEY_FILE), previous)


def _key_file(path: Path) -> str:
    if path.exists():
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("secret_key_file_permissions", path=str(path), expected="0600")
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write a private temporary file, then link it into place: the link fails if another process
    # won the race, and nobody ever reads a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(Fernet.generate_key().decode("ascii") + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    log.warning(
        "secret_key_generated",
        path=str(path),
        hint="set SWITCHBOARD_SECRET_KEY (or back up this file): stored credentials need it",
    )
    return path.read_text(encoding="ascii").strip()
