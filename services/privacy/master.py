"""The master key (KEK): where it comes from, and wrapping the keys stored under it.

The KEK is 32 random bytes, written as 64 hex digits or as URL-safe base64 (43 or 44
characters). It comes from `LEDGER_MASTER_KEY`, or from the file `LEDGER_MASTER_KEY_FILE`
names. With the embedded default database only, a missing key is made on first start in
`<data folder>/master.key` (mode 0600); an external database never gets a generated key,
since losing it would make every member's personal data unreadable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + 16
"""A data key as `MasterKey.wrap` stores it: nonce, ciphertext, and the 16-byte GCM tag."""
MASTER_KEY_ENV = "LEDGER_MASTER_KEY"
MASTER_KEY_FILE_ENV = "LEDGER_MASTER_KEY_FILE"
EMBEDDED_KEY_FILE = "master.key"
_KEK_ID_LABEL = b"community-ledger kek id"


class MasterKeyError(RuntimeError):
    """No usable master key: missing, or not 32 bytes in a known spelling."""


class WrongMasterKey(MasterKeyError):
    """A master key that does not unwrap the keys the ledger holds."""


class MasterKey:
    """The KEK in memory; its `kek_id` names it in the database without revealing it."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"a master key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._key = key
        digest = hmac.new(key, _KEK_ID_LABEL, hashlib.sha256).hexdigest()
        self.kek_id = f"kek-{digest[:16]}"

    def __repr__(self) -> str:
        return f"MasterKey({self.kek_id})"

    def wrap(self, key: bytes, context: bytes, nonce: bytes | None = None) -> bytes:
        """AES-256-GCM with a fresh nonce; `context` (associated data) binds the wrapped key
        to its row, so a wrapped key moved to another member's row does not unwrap.

        `nonce`: 12 fresh random bytes, for callers that draw many at once."""
        nonce = nonce or os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except (InvalidTag, ValueError):  # ValueError: too short to hold a nonce
            raise WrongMasterKey(
                f"the master key {self.kek_id} does not unwrap a stored key "
                "(another master key, or a damaged row)"
            ) from None

    def encoded(self) -> str:
        """The URL-safe base64 spelling, as `keys new-master` prints and key files hold."""
        return base64.urlsafe_b64encode(self._key).decode()


def new_master_key() -> MasterKey:
    return MasterKey(secrets.token_bytes(KEY_BYTES))


def parse_master_key(text: str, *, source: str) -> MasterKey:
    """64 hex digits or URL-safe base64 of 32 bytes; errors name the source, never the text."""
    text = text.strip()
    key: bytes | None = None
    if len(text) == 2 * KEY_BYTES:
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != KEY_BYTES:
        raise MasterKeyError(
            f"{source} does not hold a master key: expected {KEY_BYTES} random bytes as "
            f"{2 * KEY_BYTES} hex digits or URL-safe base64 "
            "(make one with `community-ledger keys new-master`)"
        )
    return MasterKey(key)


def read_key_file(path: Path) -> MasterKey:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise MasterKeyError(f"the master key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not a text file"
        raise MasterKeyError(f"cannot read the master key file {path}: {reason}") from None
    return parse_master_key(text, source=f"the master key file {path}")


def write_key_file(path: Path, key: MasterKey) -> bool:
    """Write `key` to `path` with mode 0600 unless a file is there; True if written.

    Written whole to a private temporary file, then linked into place: linking fails if the
    name exists, so of two processes starting at once one key wins and neither reads half.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key.encoded() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    return True


def load_master_key(settings: Settings, environ: Mapping[str, str] | None = None) -> MasterKey:
    """The process's KEK, from the environment, a key file, or (embedded only) made once."""
    env = os.environ if environ is None else environ
    text, file = env.get(MASTER_KEY_ENV), env.get(MASTER_KEY_FILE_ENV)
    if text and file:
        raise MasterKeyError(f"set {MASTER_KEY_ENV} or {MASTER_KEY_FILE_ENV}, not both")
    if text:
        return parse_master_key(text, source=MASTER_KEY_ENV)
    if file:
        return read_key_file(Path(file).expanduser())
    if settings.uses_embedded_database:
        path = settings.data_dir / EMBEDDED_KEY_FILE
        if not path.exists():
            write_key_file(path, new_master_key())
        return read_key_file(path)
    raise MasterKeyError(
        f"no master key: set {MASTER_KEY_ENV} or {MASTER_KEY_FILE_ENV} "
        "(docs/operations.md, 'Keys'; make one with `community-ledger keys new-master`)"
    )
