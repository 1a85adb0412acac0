"""The alerting rules of ``deploy/alerts.yml`` are loaded and sound: Prometheus
(``deploy/prometheus.yml``, the compose Prometheus) reads them, each says
what to do, and every metric they name is one a service serves."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = (
    "gateway",
    "reservation_service",
    "consumer_service",
    "notifier_service",
    "payment_service",
)
METRIC_NAME = re.compile(r"\bticketing_[a-z0-9_]+\b")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load(DEPLOY / "alerts.yml")["groups"] for rule in group["rules"]]


def served_metrics() -> set[str]:
    """Every metric name the services' processes expose."""
    importlib.import_module("ticketing_common.metrics")
    for service in SERVICES:
        try:
            importlib.import_module(f"{service}.metrics")
        except ModuleNotFoundError:
            continue
    names: set[str] = set()
    for metric in REGISTRY.collect():
        names.add(metric.name)
        if metric.type == "counter":  # a labelled counter has no samples until used
            names.add(f"{metric.name}_total")
        names.update(sample.name for sample in metric.samples)
    return names


def test_prometheus_loads_the_alerting_rules_in_compose_too() -> None:
    config = load(DEPLOY / "prometheus.yml")
    assert "alerts.yml" in config["rule_files"]
    (prometheus,) = [
        s for name, s in load(DEPLOY / "compose.yaml")["services"].items() if name == "prometheus"
    ]
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_alert_names_served_metrics_and_says_what_to_do(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    named = set(METRIC_NAME.findall(rule["expr"]))
    assert named, rule["expr"]
    assert named <= served_metrics()


def test_a_payment_needing_an_operator_pages() -> None:
    (alert,) = [r for r in rules() if r["alert"] == "PaymentsNeedAttention"]
    assert alert["expr"] == "max(ticketing_payments_needing_attention) > 0"
    assert alert["labels"]["severity"] == "page"
    assert "ticketing-admin payments" in alert["annotations"]["description"]
