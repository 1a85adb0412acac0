"""``ticketing-admin record-key``: a new record key, and the settings of each
step of rolling it out (README, "Rotating the record key")."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

from ticketing_common.config import ReservationIdSecret, variable
from ticketing_common.record_keys import RecordKeys

SECRET = variable(ReservationIdSecret, "reservation_id_secret")
KEY_ID = variable(ReservationIdSecret, "reservation_key_id")
VERIFY = variable(ReservationIdSecret, "reservation_verify_keys")


def new_key(now: datetime | None = None) -> RecordKeys:
    """A fresh key: its id says when it was made, its secret is 384 random bits."""
    moment = now or datetime.now(UTC)
    key_id = f"k{moment:%Y%m%d}-{secrets.token_hex(4)}"
    return RecordKeys.single(key_id, secrets.token_urlsafe(48).encode())


def rollout(key: RecordKeys) -> str:
    """The three steps, with the settings each one sets on every gateway and
    consumer. The current key appears as placeholders: it is where it is now."""
    new = {key.key_id: key.secret.decode()}
    old_id, old_secret = "<current key id>", "<current secret>"
    return "\n".join(
        [
            f"# New record key {key.key_id}. Set each step on every gateway and consumer,",
            "# and finish a step's rollout before starting the next one.",
            "#",
            "# 1. Accept the new key (add it to any keys already accepted):",
            f"{VERIFY}={json.dumps(new)}",
            "#",
            "# 2. Sign with the new key, the old one accepted:",
            f"{KEY_ID}={key.key_id}",
            f"{SECRET}={key.secret.decode()}",
            f"{VERIFY}={json.dumps({old_id: old_secret})}",
            "#",
            "# 3. Once the old key's records are decided and its retries over (the",
            "#    consumer lag is zero and TICKETING_GATEWAY_IDEMPOTENCY_TTL_S has passed",
            "#    since step 2), retire it:",
            f"{VERIFY}={{}}",
        ]
    )


def print_new_key(*, as_json: bool) -> int:
    key = new_key()
    if as_json:
        print(json.dumps({"key_id": key.key_id, "secret": key.secret.decode()}))
    else:
        print(rollout(key))
    return 0
