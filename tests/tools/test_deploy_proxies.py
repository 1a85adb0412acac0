"""The deployed gateways believe the client address their proxy reports:
left at the loopback default, every client behind Envoy would count as
Envoy's one address in the per-address limits, and a sale's buyers would
share its 100 calls a second."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml
from pydantic import TypeAdapter

from gateway.settings import Networks

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def test_kubernetes_gateways_trust_the_fronts_network_not_only_loopback() -> None:
    config = yaml.safe_load((K8S / "config.yaml").read_text())
    given = config["data"]["TICKETING_GATEWAY_TRUSTED_PROXIES"]
    networks = TypeAdapter(Networks).validate_python(given)  # as the gateway reads it
    assert networks
    assert not all(network.is_loopback for network in networks)
    # A front pod's address (the usual pod networks are private) is believed.
    front = ipaddress.ip_address("10.244.1.17")
    assert any(front in network for network in networks)
