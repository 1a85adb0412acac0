"""The README's configuration tables and deploy/env.example are what the
settings declarations produce; every declaration follows the naming rule;
the launcher's and the tools' settings read as the services' do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from consumer_service.settings import ConsumerSettings
from gateway.settings import GatewaySettings
from notifier_service.settings import NotifierSettings
from payment_service.settings import PaymentSettings
from reservation_service.settings import ReservationSettings
from ticketing_common.config import PREFIX, RENAMED, explain
from ticketing_tools import settings_doc
from ticketing_tools.stack import RunningStack, StackConfig

from ..faults.conftest import FAULT_SETTINGS

COMPONENTS = {
    "",
    "AUTH",
    "KAFKA",
    "GATEWAY",
    "RESERVATION",
    "CONSUMER",
    "NOTIFIER",
    "PAYMENT",
    "STRIPE",
    "STACK",
    "ADMIN",
}


def test_the_committed_docs_are_what_the_declarations_produce(
    pytestconfig: pytest.Config,
) -> None:
    root = pytestconfig.rootpath
    for path, text in settings_doc.expected(root).items():
        assert path.read_text() == text, f"{path.name} is stale: run `make settings-doc`"


def test_editing_a_table_by_hand_is_caught(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    root = pytestconfig.rootpath
    (tmp_path / "deploy").mkdir()
    for path in (settings_doc.README, settings_doc.ENV_EXAMPLE):
        shutil.copy(root / path, tmp_path / path)
    assert settings_doc.main(["--root", str(tmp_path)]) == 0
    readme = tmp_path / settings_doc.README
    readme.write_text(readme.read_text().replace("| `10000` |", "| `20000` |", 1))
    assert settings_doc.main(["--root", str(tmp_path)]) == 1
    assert settings_doc.main(["--root", str(tmp_path), "--write"]) == 0
    assert settings_doc.main(["--root", str(tmp_path)]) == 0
    assert readme.read_text() == (root / settings_doc.README).read_text()


def test_every_setting_follows_the_rule_and_says_what_it_means() -> None:
    settings = settings_doc.collect()
    assert len({s.variable for s in settings}) == len(settings)
    for s in settings:
        prefix = s.declared_by.model_config.get("env_prefix", "")
        assert prefix.startswith(PREFIX)
        assert prefix.removeprefix(PREFIX).rstrip("_") in COMPONENTS
        assert s.variable == f"{prefix}{s.name.upper()}"
        assert s.field.description, f"{s.variable} has no description"


def test_every_service_gets_its_own_port_and_pool_by_default(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("TICKETING_RESERVATION_ID_SECRET", "s" * 32)  # the gateway needs one
    ports = {
        cls.__name__: (cls().server.port, cls().pool_size)
        for cls in (
            GatewaySettings,
            ReservationSettings,
            ConsumerSettings,
            NotifierSettings,
            PaymentSettings,
        )
    }
    assert ports == {
        "GatewaySettings": (50061, 8),
        "ReservationSettings": (50071, 8),
        "ConsumerSettings": (50081, 6),
        "NotifierSettings": (50091, 8),
        "PaymentSettings": (50101, 8),
    }
    settings_env.setenv("TICKETING_PORT", "7000")
    settings_env.setenv("TICKETING_CONSUMER_POOL_SIZE", "3")
    assert (ConsumerSettings().server.port, ConsumerSettings().pool_size) == (7000, 3)
    assert GatewaySettings().pool_size == 8


def test_old_names_point_at_declared_variables() -> None:
    declared = {s.variable for s in settings_doc.collect()}
    assert not declared & set(RENAMED)
    for new in RENAMED.values():
        assert set(new) <= declared


def test_the_fault_stack_sets_declared_variables_only() -> None:
    declared = {s.variable for s in settings_doc.collect()}
    assert set(FAULT_SETTINGS) <= declared


def test_the_launcher_reads_its_settings_and_the_shared_connections(
    settings_env: pytest.MonkeyPatch,
) -> None:
    config = StackConfig()
    assert (config.gateways, config.kafka_nodes, config.keep_logs) == (2, 1, None)
    assert not {"postgres_dsn", "redis_url"} & config.model_fields_set
    assert "bootstrap" not in config.kafka.model_fields_set
    settings_env.setenv("TICKETING_STACK_GATEWAYS", "3")
    settings_env.setenv("TICKETING_STACK_KAFKA_NODES", "3")
    settings_env.setenv("TICKETING_POSTGRES_DSN", "postgresql://db/ticketing")
    settings_env.setenv("TICKETING_KAFKA_BOOTSTRAP", "k:9092")
    config = StackConfig(listen_port=0)
    assert (config.gateways, config.kafka_nodes, config.listen_port) == (3, 3, 0)
    # Set, a connection setting names a server to use instead of starting one.
    assert "postgres_dsn" in config.model_fields_set
    assert "redis_url" not in config.model_fields_set
    assert config.kafka.bootstrap == "k:9092"
    assert "bootstrap" in config.kafka.model_fields_set


def test_a_bad_launcher_setting_names_its_variable(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("TICKETING_STACK_KAFKA_NODES", "0")
    settings_env.setenv("TICKETING_STACK_LISTEN_PORT", "http")
    with pytest.raises(ValidationError) as caught:
        StackConfig()
    assert sorted(explain(StackConfig, caught.value)) == [
        "TICKETING_STACK_KAFKA_NODES must be >= 1, got 0",
        "TICKETING_STACK_LISTEN_PORT must be an integer, got http",
    ]


def test_a_running_stack_is_found_from_what_the_launcher_writes(
    settings_env: pytest.MonkeyPatch,
) -> None:
    assert RunningStack().endpoint is None
    settings_env.setenv("TICKETING_STACK_ENDPOINT", "127.0.0.1:50051")
    settings_env.setenv("TICKETING_STACK_PIDS", "11,12,13")
    settings_env.setenv("TICKETING_KAFKA_REQUESTS_TOPIC", "requests")
    running = RunningStack()
    assert (running.endpoint, running.pids) == ("127.0.0.1:50051", (11, 12, 13))
    assert running.kafka.requests_topic == "requests"
