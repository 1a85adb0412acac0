"""Shared settings: read from flat TICKETING_* variables named by one rule,
bounds enforced, bad values named by their variable, one line each."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from ticketing_common.config import (
    ConfigError,
    KafkaSettings,
    PostgresClient,
    RedisClient,
    ServerSettings,
    explain,
    settings_config,
    variable,
)
from ticketing_common.runtime import settings_or_exit


class ExampleSettings(PostgresClient, RedisClient):
    """Built like a service's settings: mixins, groups, a default port."""

    model_config = settings_config("EXAMPLE")

    server: ServerSettings = ServerSettings.with_defaults(port=50099)
    kafka: KafkaSettings = KafkaSettings.with_defaults()
    batch: int = Field(10, ge=1, le=100, description="records per batch")
    pause_s: float = Field(0.5, gt=0, description="pause between batches")


def test_a_good_environment_is_read_from_flat_variables(
    settings_env: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "TICKETING_HOST": "0.0.0.0",
        "TICKETING_PORT": "6000",
        "TICKETING_LOG_LEVEL": "WARNING",
        "TICKETING_POSTGRES_DSN": "postgresql://db/x",
        "TICKETING_REDIS_URL": "redis://cache/1",
        "TICKETING_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
        "TICKETING_KAFKA_FETCH_LINGER_MS": "20",
        "TICKETING_EXAMPLE_BATCH": "42",
        "TICKETING_EXAMPLE_PAUSE_S": "1.5",
    }.items():
        settings_env.setenv(name, value)
    settings = ExampleSettings()
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 6000)
    assert settings.server.log_level == "warning"
    assert (settings.postgres_dsn, settings.redis_url) == ("postgresql://db/x", "redis://cache/1")
    assert (settings.kafka.bootstrap, settings.kafka.fetch_linger_ms) == ("k1:9092,k2:9092", 20)
    assert (settings.batch, settings.pause_s) == (42, 1.5)
    # Untouched settings keep their declared defaults.
    assert settings.kafka.requests_topic == "ticketing.reservation-requests"
    assert settings.server.shutdown_grace_s == 10.0


def test_a_service_default_gives_way_to_the_environment(settings_env: pytest.MonkeyPatch) -> None:
    assert ExampleSettings().server.port == 50099
    assert ServerSettings().port == 0
    settings_env.setenv("TICKETING_PORT", "0")
    assert ExampleSettings().server.port == 0


def test_a_variable_is_named_by_the_class_that_declares_it() -> None:
    assert variable(ExampleSettings, "batch") == "TICKETING_EXAMPLE_BATCH"
    assert variable(ExampleSettings, "postgres_dsn") == "TICKETING_POSTGRES_DSN"
    assert variable(ExampleSettings, "redis_url") == "TICKETING_REDIS_URL"
    assert variable(KafkaSettings, "consumer_group") == "TICKETING_KAFKA_CONSUMER_GROUP"
    assert variable(ServerSettings, "instance_id") == "TICKETING_INSTANCE_ID"
    with pytest.raises(KeyError):
        variable(ExampleSettings, "nothing")


def test_each_bad_value_is_named_by_its_variable_on_a_line_of_its_own(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("TICKETING_PORT", "eighty")
    settings_env.setenv("TICKETING_LOG_LEVEL", "loud")
    settings_env.setenv("TICKETING_KAFKA_FETCH_LINGER_MS", "5000")
    settings_env.setenv("TICKETING_EXAMPLE_BATCH", "0")
    settings_env.setenv("TICKETING_EXAMPLE_PAUSE_S", "soon")
    with pytest.raises(ValidationError) as caught:
        ExampleSettings()
    assert sorted(explain(ExampleSettings, caught.value)) == [
        "TICKETING_EXAMPLE_BATCH must be >= 1, got 0",
        "TICKETING_EXAMPLE_PAUSE_S must be a number, got soon",
        "TICKETING_KAFKA_FETCH_LINGER_MS must be <= 1000, got 5000",
        "TICKETING_LOG_LEVEL must be 'debug', 'info', 'warning' or 'error', got loud",
        "TICKETING_PORT must be an integer, got eighty",
    ]


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("TICKETING_EXAMPLE_BATCH", "1", True),
        ("TICKETING_EXAMPLE_BATCH", "100", True),
        ("TICKETING_EXAMPLE_BATCH", "101", False),
        ("TICKETING_EXAMPLE_BATCH", "2.5", False),
        ("TICKETING_EXAMPLE_PAUSE_S", "0.001", True),
        ("TICKETING_EXAMPLE_PAUSE_S", "0", False),
        ("TICKETING_PORT", "65535", True),
        ("TICKETING_PORT", "65536", False),
        ("TICKETING_PORT", "-1", False),
        ("TICKETING_KAFKA_FETCH_LINGER_MS", "0", True),
        ("TICKETING_KAFKA_PARTITIONS", "0", False),
    ],
)
def test_bounds_are_enforced(
    settings_env: pytest.MonkeyPatch, name: str, value: str, ok: bool
) -> None:
    settings_env.setenv(name, value)
    if ok:
        ExampleSettings()
    else:
        with pytest.raises(ValidationError) as caught:
            ExampleSettings()
        (line,) = explain(ExampleSettings, caught.value)
        assert line.startswith(f"{name} must be ")
        assert line.endswith(f", got {value}")


def test_an_empty_variable_is_unset(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("TICKETING_PORT", "")
    settings_env.setenv("TICKETING_POSTGRES_DSN", "")
    settings_env.setenv("TICKETING_EXAMPLE_BATCH", "")
    settings = ExampleSettings()
    assert settings.server.port == 50099
    assert settings.postgres_dsn == "postgresql://postgres@127.0.0.1:5432/ticketing"
    assert settings.batch == 10
    assert "postgres_dsn" not in settings.model_fields_set


def test_unknown_variables_are_ignored(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("TICKETING_EXAMPLE_NO_SUCH_SETTING", "1")
    settings_env.setenv("TICKETING_BATCH", "7")  # the rule's name has the component
    assert ExampleSettings().batch == 10


def test_a_name_used_before_the_rule_stops_with_its_new_name(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("TICKETING_BREAKER_THRESHOLD", "5")
    settings_env.setenv("TICKETING_PG_POOL_SIZE", "4")
    with pytest.raises(ConfigError) as caught:
        ExampleSettings()
    assert str(caught.value).splitlines() == [
        "TICKETING_BREAKER_THRESHOLD was renamed TICKETING_CONSUMER_BREAKER_THRESHOLD",
        "TICKETING_PG_POOL_SIZE was renamed TICKETING_CONSUMER_POOL_SIZE / "
        "TICKETING_GATEWAY_POOL_SIZE / TICKETING_NOTIFIER_POOL_SIZE / "
        "TICKETING_RESERVATION_POOL_SIZE",
    ]


def test_values_given_in_code_win_over_the_environment(
    settings_env: pytest.MonkeyPatch,
) -> None:
    settings_env.setenv("TICKETING_EXAMPLE_BATCH", "42")
    assert ExampleSettings(batch=7).batch == 7
    with pytest.raises(ValidationError):
        ExampleSettings(batch=0)
    with pytest.raises(ValidationError):
        ExampleSettings(no_such_setting=1)  # type: ignore[call-arg]


def test_settings_are_frozen(settings_env: pytest.MonkeyPatch) -> None:
    settings = ExampleSettings()
    with pytest.raises(ValidationError):
        settings.batch = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.server.port = 1  # type: ignore[misc]


def test_a_bad_setting_ends_the_process_with_code_2_and_a_line_per_variable(
    settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_env.setenv("TICKETING_EXAMPLE_BATCH", "0")
    settings_env.setenv("TICKETING_KAFKA_PARTITIONS", "none")
    with pytest.raises(SystemExit) as caught:
        settings_or_exit(ExampleSettings)
    assert caught.value.code == 2
    assert sorted(capsys.readouterr().err.splitlines()) == [
        "configuration error: TICKETING_EXAMPLE_BATCH must be >= 1, got 0",
        "configuration error: TICKETING_KAFKA_PARTITIONS must be an integer, got none",
    ]
