"""What the local stack hands its services, read without starting it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reservation_service.settings import ReservationSettings
from ticketing_common.config import variable
from ticketing_tools.stack.launcher import LocalStack, StackConfig


@pytest.fixture
def unstarted_stack() -> Iterator[LocalStack]:
    unstarted = LocalStack(StackConfig(reservation_services=2))
    try:
        yield unstarted
    finally:
        unstarted.stop()


def test_every_reservation_service_signs_page_tokens_with_one_key(
    unstarted_stack: LocalStack,
) -> None:
    """nginx sends a list call's next page to any of them: a token one
    issued must hold on the others."""
    setting = variable(ReservationSettings, "page_token_secret")
    keys = {
        unstarted_stack._service_env("reservation_service", i, 0).get(setting) for i in range(2)
    }
    (key,) = keys
    assert key is not None and len(key) >= 32
