"""Webhook signing secrets: made, shown once, stored wrapped by the master key.

The secret is stored like a member's data key (`services/privacy/master.py`), so a copy
of the database alone cannot forge deliveries, and `keys rotate-master` re-wraps it.
The format, `whsec_` + base64 of 32 random bytes, is the one `standardwebhooks` reads.
A rotation keeps the superseded secret for a grace period, during which a delivery carries
a signature by each (Standard Webhooks: space-separated, the receiver accepts any match).
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta

from standardwebhooks import Webhook

from services.privacy.keyring import WEBHOOK_SECRET_CONTEXT as CONTEXT
from services.privacy.master import MasterKey, WrongMasterKey

PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_GRACE = timedelta(hours=24)
"""How long a rotated-away secret keeps signing, unless the rotation says otherwise."""
MAX_GRACE = timedelta(days=7)


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def wrap_secret(master: MasterKey, secret: str) -> tuple[bytes, str]:
    """The secret wrapped for the `secret_wrapped` column, and the `kek_id` beside it."""
    return master.wrap(secret.encode(), CONTEXT), master.kek_id


def unwrap_secret(master: MasterKey, wrapped: bytes, kek_id: str) -> str:
    """Raises WrongMasterKey when the row was wrapped by another master key."""
    if kek_id != master.kek_id:
        raise WrongMasterKey(
            f"a webhook secret is wrapped by master key {kek_id}, this process holds "
            f"{master.kek_id}: restart it with the current master key"
        )
    return master.unwrap(bytes(wrapped), CONTEXT).decode()


class Signer:
    """Signs a delivery with the current secret, and with the previous one until `until`."""

    def __init__(
        self, current: str, previous: str | None = None, until: datetime | None = None
    ) -> None:
        self.current = Webhook(current)
        self.previous = Webhook(previous) if previous is not None else None
        self.until = until

    def sign(self, message_id: str, at: datetime, body: str) -> str:
        """The `webhook-signature` header: the current secret's signature first."""
        signature = self.current.sign(message_id, at, body)
        if self.previous is not None and self.until is not None and at < self.until:
            signature += " " + self.previous.sign(message_id, at, body)
        return signature
