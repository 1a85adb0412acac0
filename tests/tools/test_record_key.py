"""``ticketing-admin record-key``: what it prints is what the services read,
and following its steps keeps every record verifiable."""

from __future__ import annotations

import itertools
import json
import uuid

import pytest

from consumer_service.settings import ConsumerSettings
from gateway.settings import GatewaySettings
from ticketing.queue.v1 import queue_pb2
from ticketing_common.record_keys import RecordKeys
from ticketing_tools.admin import parser
from ticketing_tools.record_key import KEY_ID, SECRET, VERIFY, print_new_key

CURRENT_ID, CURRENT_SECRET = "k1", "c" * 40


def printed_key(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    args = parser().parse_args(["record-key", "--json"])
    assert print_new_key(as_json=args.json) == 0
    key = json.loads(capsys.readouterr().out)
    return key["key_id"], key["secret"]


def steps(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """The settings of each printed step, the placeholders filled in."""
    print_new_key(as_json=parser().parse_args(["record-key"]).json)
    out = capsys.readouterr().out
    out = out.replace("<current key id>", CURRENT_ID).replace("<current secret>", CURRENT_SECRET)
    found: list[dict[str, str]] = []
    for line in out.splitlines():
        if line.startswith("# ") and line[2:3].isdigit():
            found.append({})
        elif line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[-1][name] = value
    return found


def test_each_key_is_new_and_the_services_take_it(
    capsys: pytest.CaptureFixture[str], settings_env: pytest.MonkeyPatch
) -> None:
    first, second = printed_key(capsys), printed_key(capsys)
    assert first[0] != second[0] and first[1] != second[1]
    key_id, secret = first
    settings_env.setenv(KEY_ID, key_id)
    settings_env.setenv(SECRET, secret)
    keys = ConsumerSettings().record_keys()
    assert (keys.key_id, keys.secret) == (key_id, secret.encode())


def test_the_printed_steps_keep_every_record_verifiable(
    capsys: pytest.CaptureFixture[str], settings_env: pytest.MonkeyPatch
) -> None:
    """Between any two neighbouring steps (a rollout has processes on both),
    what one side signs the other side verifies; after step 3 the old key
    is refused."""
    settings_env.setenv("TICKETING_AUTH_JWKS_FILE", "/dev/null")  # the gateway wants one
    before = {KEY_ID: CURRENT_ID, SECRET: CURRENT_SECRET}
    one, two, three = steps(capsys)
    configs = [before, before | one, two, two | three]

    def keys(config: dict[str, str]) -> tuple[RecordKeys, RecordKeys]:
        for name in (KEY_ID, SECRET, VERIFY):
            settings_env.delenv(name, raising=False)
        for name, value in config.items():
            settings_env.setenv(name, value)
        return GatewaySettings().record_keys(), ConsumerSettings().record_keys()

    def record(signer: RecordKeys) -> queue_pb2.ReservationRequested:
        message = queue_pb2.ReservationRequested(
            reservation_id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), user_id="u", quantity=1
        )
        signer.sign(message)
        return message

    for earlier, later in itertools.pairwise(configs):
        gateway_a, consumer_a = keys(earlier)
        gateway_b, consumer_b = keys(later)
        assert consumer_b.verify(record(gateway_a)) is None
        assert consumer_a.verify(record(gateway_b)) is None
    _, retired = keys(configs[-1])
    old_gateway, _ = keys(before)
    assert retired.verify(record(old_gateway)) is not None
