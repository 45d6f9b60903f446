"""Webhook signing secrets: made, shown once, stored wrapped by the master key.

The secret is stored like a member's data key (`services/privacy/master.py`), so a copy
of the database alone cannot forge deliveries, and `keys rotate-master` re-wraps it.
The format, `whsec_` + base64 of 32 random bytes, is the one `standardwebhooks` reads.
"""

from __future__ import annotations

import base64
import os

from services.privacy.keyring import WEBHOOK_SECRET_CONTEXT as CONTEXT
from services.privacy.master import MasterKey, WrongMasterKey

PREFIX = "whsec_"
SECRET_BYTES = 32


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
