"""The deployment files agree with the code.

The Dockerfile, ``deploy/compose.yaml``, the Kubernetes manifests of
``deploy/k8s`` (rendered as kustomize does), ``deploy/envoy.yaml``, the
compose nginx and ``deploy/prometheus.yml`` name settings, ports and health
services that the code declares elsewhere: every setting they name exists
and reaches only a process that reads it, every port and health name is the
service's own, the drain fits in the stop timeout, the gRPC fronts route
as the local stack does, and the payment services run Stripe, with its keys
from secrets, behind an HTTPS listener that passes Stripe's webhooks and
nothing else. Nothing here needs a running stack.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from reservation_service.settings import ReservationSettings
from ticketing_common.config import (
    KafkaSettings,
    ReservationIdSecret,
    ServerSettings,
    group_defaults,
    variable,
)
from ticketing_tools import db_access, settings_doc
from ticketing_tools.stack import nginx
from ticketing_tools.stack.launcher import KAFKA_USERS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

# What a service's Deployment, compose service, Envoy cluster and Prometheus
# job are called (Kubernetes names allow no underscore).
HOST_NAMES = {
    "gateway": "gateway",
    "reservation_service": "reservation",
    "consumer_service": "consumer",
    "notifier_service": "notifier",
    "payment_service": "payment",
}
# Margin between the drain (delay and grace) and the stop timeout: closing
# the pools, a consumer's last commit.
STOP_MARGIN_S = 5.0
SETTING_NAME = re.compile(r"\bTICKETING_[A-Z0-9_]+\b")

# The payment service's provider and its webhook server (payment_service/settings.py;
# test_the_payment_settings_named_here_are_the_services_own holds these to it).
PROVIDER = "TICKETING_PAYMENT_PROVIDER"
ALLOW_LOCAL = "TICKETING_PAYMENT_ALLOW_LOCAL"
LOCAL_STACK = "TICKETING_PAYMENT_LOCAL_STACK"
STRIPE_API_KEY = "TICKETING_STRIPE_API_KEY"
STRIPE_WEBHOOK_SECRET = "TICKETING_STRIPE_WEBHOOK_SECRET"
WEBHOOK_PORT = "TICKETING_PAYMENT_WEBHOOK_PORT"
STRIPE_SECRETS = (STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET)
# Where Stripe posts its events, and where the fronts check an instance.
WEBHOOK_PATH = "/stripe/webhook"
WEBHOOK_HEALTH_PATH = "/healthz"
# The Kubernetes Secret of Stripe's keys: a template beside the manifests,
# never among kustomize's resources (applying would overwrite the real one).
STRIPE_SECRET_TEMPLATE = "stripe-secret.yaml"
STRIPE_SECRET_KEYS = {STRIPE_API_KEY: "api-key", STRIPE_WEBHOOK_SECRET: "webhook-secret"}
# What compose reads from the operator's environment alone: no placeholder
# in deploy/.env. The values are for `docker-compose config` in the tests.
FROM_OPERATOR = {
    "STRIPE_API_KEY": "sk_test_compose_config_check",
    "STRIPE_WEBHOOK_SECRET": "whsec_compose_config_check",
    "WEBHOOK_TLS_DIR": "/nonexistent/webhook-tls",
}


@dataclass(frozen=True)
class Service:
    """One service as its code declares it."""

    module: str
    health: str
    port: int
    metrics_port: int
    # The TICKETING_* variables its settings read.
    reads: frozenset[str]


def _variables_of(user: str) -> frozenset[str]:
    return frozenset(s.variable for s in settings_doc.collect() if user in s.users)


@cache
def services() -> dict[str, Service]:
    found = {}
    for module, settings in settings_doc.SERVICES.items():
        (health,) = importlib.import_module(f"{module}.app").SERVICES
        server = group_defaults(settings.model_fields["server"])
        found[module] = Service(
            module, health, server["port"], server["metrics_port"], _variables_of(module)
        )
    return found


@cache
def all_variables() -> frozenset[str]:
    return frozenset(s.variable for s in settings_doc.collect())


def server_variable(name: str) -> str:
    """The variable of a setting every server shares (`TICKETING_DRAIN_DELAY_S`)."""
    return variable(ServerSettings, name)


# -- reading the files ---------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# Kinds that live in no namespace (kustomize leaves them without one).
CLUSTER_SCOPED = frozenset({"Namespace"})
KUSTOMIZE_FIELDS = frozenset({"apiVersion", "kind", "namespace", "resources", "images"})


def render_kustomization(folder: Path) -> list[dict[str, Any]]:
    """The manifests of ``folder`` as ``kustomize build`` renders them, for
    the fields its kustomization.yaml may use here (resources, namespace,
    images); a field this reader does not know fails instead of being
    ignored. ``test_the_reader_renders_as_kustomize_does`` compares it with
    kustomize itself where a binary is at hand."""
    kustomization = load_yaml(folder / "kustomization.yaml")
    unknown = set(kustomization) - KUSTOMIZE_FIELDS
    assert not unknown, f"kustomization.yaml uses {sorted(unknown)}: teach render_kustomization"
    images = {image["name"]: image for image in kustomization.get("images", [])}
    documents = []
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((folder / resource).read_text()):
            if document is None:
                continue
            if document["kind"] not in CLUSTER_SCOPED and "namespace" in kustomization:
                document["metadata"]["namespace"] = kustomization["namespace"]
            for container in pod_containers(document):
                name, _, tag = container["image"].partition(":")
                if name in images:
                    image = images[name]
                    tag = image.get("newTag", tag)
                    container["image"] = image.get("newName", name) + (f":{tag}" if tag else "")
            documents.append(document)
    return documents


def containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    template = document.get("spec", {}).get("template", {})
    return list(template.get("spec", {}).get("containers", []))


def pod_containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The init containers, then the containers."""
    spec = document.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


@cache
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in render_kustomization(K8S)}


def of_kind(kind: str) -> Iterator[dict[str, Any]]:
    return (d for (k, _), d in manifests().items() if k == kind)


def config_map() -> dict[str, str]:
    (config,) = of_kind("ConfigMap")
    data: dict[str, str] = config["data"]
    return data


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(DEPLOY / "compose.yaml")
    return loaded


def module_of(command: list[str]) -> str | None:
    """The service a container's command runs (``python -m gateway``)."""
    if command[:2] == ["python", "-m"]:
        return command[2]
    return None


def compose_services_running(module: str) -> list[str]:
    return [
        name
        for name, spec in compose()["services"].items()
        if module_of(spec.get("command", [])) == module
    ]


def seconds(text: str | int | float) -> float:
    if isinstance(text, int | float):
        return float(text)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    assert match, f"not a duration: {text!r}"
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


def deployment_of(module: str) -> dict[str, Any]:
    found = [
        d for d in of_kind("Deployment") if module_of(containers(d)[0].get("command", [])) == module
    ]
    assert len(found) == 1, f"{module}: {len(found)} Deployments run it"
    return found[0]


# -- settings ------------------------------------------------------------------


def test_every_setting_the_files_name_exists() -> None:
    files = [
        ROOT / "Dockerfile",
        DEPLOY / "compose.yaml",
        DEPLOY / "envoy.yaml",
        DEPLOY / "nginx.conf",
        DEPLOY / "prometheus.yml",
        *sorted((DEPLOY / "compose").iterdir()),
        *sorted(K8S.glob("*.yaml")),
    ]
    unknown = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in SETTING_NAME.findall(path.read_text())
        if name not in all_variables()
    }
    assert not unknown, sorted(unknown)


def test_each_compose_container_gets_only_what_its_process_reads() -> None:
    admin = _variables_of("admin")
    checked = 0
    for name, spec in compose()["services"].items():
        command = spec.get("command", [])
        module = module_of(command)
        if module is not None:
            allowed = services()[module].reads
        elif command[:1] == ["ticketing-admin"]:
            allowed = admin
        else:
            continue
        given = {key for key in spec.get("environment", {}) if key.startswith("TICKETING_")}
        assert given <= allowed, f"{name} is given {sorted(given - allowed)}, which it never reads"
        checked += 1
    assert checked == len(services()) + 3  # and the migration, grants and ACL jobs


def test_each_pod_gets_only_what_its_process_reads() -> None:
    read_by_some_service = frozenset().union(*(s.reads for s in services().values()))
    shared = set(config_map())
    assert shared <= read_by_some_service, sorted(shared - read_by_some_service)
    for service in services().values():
        (container,) = containers(deployment_of(service.module))
        own = {entry["name"] for entry in container["env"]}
        assert own <= service.reads, f"{service.module}: {sorted(own - service.reads)}"
        assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == ["ticketing-config"]
    (job,) = of_kind("Job")
    migrate, grants = pod_containers(job)
    assert migrate["command"] == ["ticketing-admin", "migrate"]
    assert grants["command"] == ["ticketing-admin", "db-grants"]
    for container in (migrate, grants):
        assert {entry["name"] for entry in container["env"]} <= _variables_of("admin")


def stripe_secret_template() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(K8S / STRIPE_SECRET_TEMPLATE)
    return document


def test_secrets_come_from_the_secret_and_its_keys_exist() -> None:
    """Every key a pod reads is in its Secret, and every key of a Secret is
    read: the applied one's and the Stripe template's."""
    (secret,) = of_kind("Secret")
    template = stripe_secret_template()
    keys = {
        secret["metadata"]["name"]: set(secret["stringData"]),
        template["metadata"]["name"]: set(template["stringData"]),
    }
    used: dict[str, set[str]] = {name: set() for name in keys}
    for document in (*of_kind("Deployment"), *of_kind("Job")):
        for container in pod_containers(document):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["name"] in keys, ref
                    used[ref["name"]].add(ref["key"])
    assert used == keys
    # Placeholders only: every value says so.
    assert all(
        "CHANGE-ME" in value
        for key, value in secret["stringData"].items()
        if key not in K8S_NOT_SECRET
    )


def _dotenv() -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )


def test_compose_secrets_are_placeholders() -> None:
    """deploy/.env has a placeholder for every secret compose names, but
    those that the operator's environment alone gives (Stripe's keys, the
    webhook certificate): the repository holds no value for them at all."""
    values = _dotenv()
    assert values
    secrets = {name: value for name, value in values.items() if name not in NOT_SECRET}
    assert all(value.startswith("CHANGE-ME") for value in secrets.values()), secrets
    named = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    assert named == set(values) | set(FROM_OPERATOR)
    assert not set(FROM_OPERATOR) & set(values)


# -- ports, health names, metrics ----------------------------------------------


def test_ports_are_the_services_defaults() -> None:
    """No file moves a port away from its default, so the defaults (which
    the rest of these tests compare against) are the ports in use."""
    moved = {server_variable("port"), server_variable("metrics_port")}
    assert not moved & set(config_map())
    for spec in compose()["services"].values():
        assert not moved & set(spec.get("environment", {}))
    for document in of_kind("Deployment"):
        for container in containers(document):
            assert not moved & {entry["name"] for entry in container["env"]}


def own_ports(module: str) -> dict[str, int]:
    """A service's ports by name: gRPC, metrics, and the payment service's
    webhook server."""
    service = services()[module]
    ports = {"grpc": service.port, "metrics": service.metrics_port}
    if module == "payment_service":
        ports["webhook"] = webhook_port()
    return ports


def test_pods_probe_their_own_port_and_health_name() -> None:
    for service in services().values():
        deployment = deployment_of(service.module)
        (container,) = containers(deployment)
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports == own_ports(service.module)
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": service.port, "service": service.health}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(service.metrics_port),
            "prometheus.io/path": "/metrics",
        }


def test_services_select_their_pods_by_their_names() -> None:
    for module, host in HOST_NAMES.items():
        deployment = deployment_of(module)
        assert deployment["metadata"]["name"] == host
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"] == labels
        service = manifests()[("Service", host)]
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"] == labels
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == own_ports(module)
        assert all(p["targetPort"] == p["name"] for p in service["spec"]["ports"])
        budget = manifests()[("PodDisruptionBudget", host)]
        assert budget["spec"]["selector"]["matchLabels"] == labels


def test_prometheus_scrapes_every_instance_on_its_metrics_port() -> None:
    jobs = {job["job_name"]: job for job in load_yaml(DEPLOY / "prometheus.yml")["scrape_configs"]}
    for module, service in services().items():
        (discovery,) = jobs[module]["dns_sd_configs"]
        (name,) = discovery["names"]
        assert compose_services_running(module) == [name]
        assert discovery["port"] == service.metrics_port


def test_the_build_context_holds_every_package() -> None:
    """`pip install .` in the image needs every package pyproject.toml lists;
    .dockerignore must leave none of them (nor the files it reads) out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {name.split(".")[0] for name in project["tool"]["setuptools"]["packages"]}
    wanted |= {"pyproject.toml", project["project"]["readme"]}
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    left_out = {name for name in wanted for pattern in patterns if fnmatch(name, pattern)}
    assert not left_out, sorted(left_out)


def test_the_image_exposes_every_port_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    exposed = {
        int(p) for line in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M) for p in line.split()
    }
    assert exposed == {p for s in services().values() for p in (s.port, s.metrics_port)}
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and all(not user.startswith(("0", "root")) for user in users)
    # The runtime image is the default target (the last stage), without the tools' extra.
    stages = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M)
    assert stages[-1] == "runtime"
    assert "[tools]" not in dockerfile.split("AS runtime")[1]


# -- draining ------------------------------------------------------------------


def test_the_stop_timeout_covers_the_drain_in_kubernetes() -> None:
    drain = float(config_map()[server_variable("drain_delay_s")])
    grace = float(config_map()[server_variable("shutdown_grace_s")])
    assert drain > 0, "without a drain delay, calls are refused before the endpoints go"
    for document in of_kind("Deployment"):
        spec = document["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        # A preStop sleep would come before SIGTERM, and so before the drain.
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
        before = float(pre_stop.get("seconds", 0))
        assert spec["terminationGracePeriodSeconds"] >= before + drain + grace + STOP_MARGIN_S


def test_the_stop_timeout_covers_the_drain_in_compose() -> None:
    for module in services():
        for name in compose_services_running(module):
            spec = compose()["services"][name]
            env = spec["environment"]
            drain = float(env[server_variable("drain_delay_s")])
            grace = float(env[server_variable("shutdown_grace_s")])
            assert seconds(spec["stop_grace_period"]) >= drain + grace + STOP_MARGIN_S, name


# -- replicas ------------------------------------------------------------------


def test_replica_counts() -> None:
    wanted = {
        "gateway": 2,
        "reservation_service": 1,
        "consumer_service": 2,
        "notifier_service": 1,
        "payment_service": 1,
    }
    for module, count in wanted.items():
        (name,) = compose_services_running(module)
        assert compose()["services"][name]["deploy"]["replicas"] == count, module
    (autoscaler,) = of_kind("HorizontalPodAutoscaler")
    assert (
        autoscaler["spec"]["scaleTargetRef"]["name"] == deployment_of("gateway")["metadata"]["name"]
    )
    assert autoscaler["spec"]["minReplicas"] == wanted["gateway"]
    # The autoscaler owns the gateways' count.
    assert "replicas" not in deployment_of("gateway")["spec"]
    for module in ("reservation_service", "notifier_service", "payment_service"):
        assert deployment_of(module)["spec"]["replicas"] == wanted[module]


def test_consumers_never_outnumber_the_partitions() -> None:
    partitions_name = variable(KafkaSettings, "partitions")
    partitions = int(config_map()[partitions_name])
    assert deployment_of("consumer_service")["spec"]["replicas"] <= partitions
    (name,) = compose_services_running("consumer_service")
    spec = compose()["services"][name]
    assert spec["deploy"]["replicas"] <= int(spec["environment"][partitions_name])
    # No autoscaler may add consumers past them.
    assert all(
        a["spec"]["scaleTargetRef"]["name"] != deployment_of("consumer_service")["metadata"]["name"]
        for a in of_kind("HorizontalPodAutoscaler")
    )


# -- the gRPC fronts -----------------------------------------------------------


@cache
def envoy() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(DEPLOY / "envoy.yaml")
    return loaded


# Envoy's listeners: the gRPC front, and Stripe's webhooks.
ENVOY_GRPC = "grpc"
ENVOY_WEBHOOK = "stripe_webhook"
# The cluster of the payment services' webhook servers, as the nginx
# upstream is named too.
WEBHOOK_CLUSTER = "payment_webhook"


def envoy_listener(name: str) -> dict[str, Any]:
    listeners = {item["name"]: item for item in envoy()["static_resources"]["listeners"]}
    assert set(listeners) == {ENVOY_GRPC, ENVOY_WEBHOOK}
    found: dict[str, Any] = listeners[name]
    return found


def envoy_virtual_host(listener: str = ENVOY_GRPC) -> dict[str, Any]:
    (chain,) = envoy_listener(listener)["filter_chains"]
    (manager,) = chain["filters"]
    (host,) = manager["typed_config"]["route_config"]["virtual_hosts"]
    found: dict[str, Any] = host
    return found


def test_envoy_routes_like_the_stack() -> None:
    routes: list[dict[str, Any]] = envoy_virtual_host()["routes"]
    by_prefix = {
        r["match"]["prefix"]: r["route"]["cluster"] for r in routes if "prefix" in r["match"]
    }
    assert by_prefix == nginx.ROUTES
    blocked = [r for r in routes if r["match"].get("path", "").endswith("/ReserveSync")]
    assert [r["direct_response"]["status"] for r in blocked] == [404]
    # The server streams are not cut by a route timeout.
    for method in ("WatchReservation", "WatchEvent"):
        (route,) = [r for r in routes if r["match"].get("path", "").endswith(f"/{method}")]
        assert seconds(route["route"]["timeout"]) == 0
        assert route["route"]["cluster"] == nginx.ROUTES["/ticketing.v1.NotifierService/"]


def test_envoy_retries_unavailable_calls_a_bounded_number_of_times() -> None:
    host = envoy_virtual_host()
    # Per route only: a virtual host's policy would reach every method.
    assert "retry_policy" not in host
    policies = [
        r["route"]["retry_policy"] for r in host["routes"] if "retry_policy" in r.get("route", {})
    ]
    assert policies
    for policy in policies:
        assert "unavailable" in policy["retry_on"].split(",")
        # Never a retry of a call that may have done its work and failed otherwise.
        assert not {"reset", "5xx", "gateway-error", "internal"} & set(
            policy["retry_on"].split(",")
        )
        assert 1 <= policy["num_retries"] <= 3


def test_envoy_checks_each_cluster_on_its_service_port_and_health_name() -> None:
    clusters = {c["name"]: c for c in envoy()["static_resources"]["clusters"]}
    # Named as nginx's upstreams, which are named as the services' modules
    # (the webhook cluster: test_envoy_passes_stripes_webhooks_and_nothing_else).
    assert set(clusters) == {*nginx.ROUTES.values(), WEBHOOK_CLUSTER}
    del clusters[WEBHOOK_CLUSTER]
    for module, cluster in clusters.items():
        service = services()[module]
        (check,) = cluster["health_checks"]
        assert check["grpc_health_check"]["service_name"] == service.health, module
        (group,) = cluster["load_assignment"]["endpoints"]
        (endpoint,) = group["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        assert address == {"address": HOST_NAMES[module], "port_value": service.port}
        assert compose_services_running(module) == [HOST_NAMES[module]]
        assert "http2_protocol_options" in str(cluster["typed_extension_protocol_options"])
        assert "outlier_detection" in cluster


def test_the_compose_nginx_routes_like_the_stack() -> None:
    conf = (DEPLOY / "compose" / "nginx.conf").read_text()
    routes = dict(re.findall(r"location (\S+) \{\s*grpc_pass grpc://(\w+);", conf))
    assert routes == nginx.ROUTES
    servers = dict(re.findall(r"upstream (\w+) \{[^}]*?server ([\w.-]+:\d+)", conf))
    # The webhook upstream: test_the_compose_nginx_passes_stripes_webhooks_and_nothing_else.
    del servers[WEBHOOK_CLUSTER]
    assert servers == {
        module: f"{HOST_NAMES[module]}:{services()[module].port}"
        for module in set(nginx.ROUTES.values())
    }
    assert "location = /ticketing.v1.GatewayService/ReserveSync {\n            return 404;" in conf


# -- the tools that check the files for real -------------------------------------


def test_the_reader_renders_as_kustomize_does() -> None:
    if shutil.which("kustomize"):
        command = ["kustomize", "build", str(K8S)]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(K8S)]
    else:
        pytest.skip("neither kustomize nor kubectl is installed; render_kustomization is unchecked")
    rendered = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    by_kustomize = {
        (d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered.stdout) if d
    }
    assert by_kustomize == manifests()


def _compose_config(given: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with deploy/.env's placeholders and, of what
    the operator's environment gives, only ``given``."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed; run `make setup`")
    environment = {k: v for k, v in os.environ.items() if k not in FROM_OPERATOR}
    return subprocess.run(
        [binary, "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environment, **given},
    )


def test_compose_file_is_valid() -> None:
    """docker-compose 1.x (Debian's, installed by `make setup`) checks the
    file against the compose schema, with deploy/.env's placeholders and
    the operator's Stripe keys and webhook certificate."""
    checked = _compose_config(FROM_OPERATOR)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("missing", sorted(FROM_OPERATOR))
def test_compose_refuses_to_start_without_what_only_the_operator_gives(missing: str) -> None:
    """No default stands in for Stripe's keys or the webhook certificate:
    without one, compose stops and names it."""
    checked = _compose_config({k: v for k, v in FROM_OPERATOR.items() if k != missing})
    assert checked.returncode != 0
    assert missing in checked.stderr, checked.stderr


# -- credentials: each service its own ------------------------------------------

POSTGRES_DSN = "TICKETING_POSTGRES_DSN"
REDIS_URL = "TICKETING_REDIS_URL"
KAFKA_USER = "TICKETING_KAFKA_SASL_USERNAME"
KAFKA_PASSWORD = "TICKETING_KAFKA_SASL_PASSWORD"
COMPOSE_SECRET = re.compile(r"\$\{(\w+):\?")


def _uses(module: str, setting: str) -> bool:
    return setting in services()[module].reads


def _url_user(url: str) -> str | None:
    """The user of a DSN or URL, compose's ``${...}`` placeholders and all."""
    match = re.match(r"^\w+://([^:@/]+)[:@]", url)
    return match[1] if match else None


def test_compose_gives_each_service_credentials_of_its_own() -> None:
    """Its own PostgreSQL role, Redis user and Kafka user, each with a
    password variable no other service is given."""
    roles = {module: role for role, module in db_access.MODULES.items()}
    seen_passwords: dict[str, str] = {}
    for module in services():
        (name,) = compose_services_running(module)
        env = compose()["services"][name]["environment"]
        secrets_given = set()
        assert _url_user(env[POSTGRES_DSN]) == roles[module], name
        secrets_given |= set(COMPOSE_SECRET.findall(env[POSTGRES_DSN]))
        if _uses(module, REDIS_URL):
            assert _url_user(env[REDIS_URL]) == roles[module], name
            secrets_given |= set(COMPOSE_SECRET.findall(env[REDIS_URL]))
        else:
            assert REDIS_URL not in env
        if module in KAFKA_USERS:
            assert env[KAFKA_USER] == KAFKA_USERS[module], name
            secrets_given |= set(COMPOSE_SECRET.findall(env[KAFKA_PASSWORD]))
        for password in secrets_given - {"RESERVATION_ID_SECRET"}:
            assert seen_passwords.setdefault(password, name) == name, (
                f"{name} and {seen_passwords[password]} share {password}"
            )
    # Only the migration jobs log in as the schema's owner.
    owners = [
        name
        for name, spec in compose()["services"].items()
        if _url_user(str(spec.get("environment", {}).get(POSTGRES_DSN, ""))) == db_access.MIGRATOR
    ]
    assert owners == ["migrate", "db-grants"]


def test_compose_creates_every_role_and_user_it_names() -> None:
    roles_sql = (DEPLOY / "postgres" / "roles.sql").read_text()
    created = set(
        re.findall(r"^CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)_password';", roles_sql, re.M)
    )
    assert created == {(role, role) for role in (*db_access.SERVICES, db_access.MIGRATOR)}
    read = dict(re.findall(r"^\\getenv (\w+) (\w+)$", roles_sql, re.M))
    postgres = compose()["services"]["postgres"]
    assert set(read.values()) <= set(postgres["environment"])
    assert (
        "./postgres/roles.sql:/docker-entrypoint-initdb.d/10-ticketing-roles.sql:ro"
        in (postgres["volumes"])
    )
    # Redis: a user per service that uses Redis, each given its password.
    rules = [line.split() for line in (DEPLOY / "redis" / "users.acl").read_text().splitlines()]
    users_on = {words[1] for words in rules if words[2] == "on"}
    redis_users = {role for role, module in db_access.MODULES.items() if _uses(module, REDIS_URL)}
    assert redis_users <= users_on
    assert not {role for role in db_access.SERVICES if role not in redis_users} & users_on
    redis = compose()["services"]["redis"]["environment"]
    assert {f"{user.upper()}_PASSWORD" for user in users_on} == set(redis)
    # Kafka: a SCRAM user per service with a Kafka client.
    setup = compose()["services"]["kafka-setup"]["environment"]
    assert {f"{user.upper()}_PASSWORD" for user in KAFKA_USERS.values()} <= set(setup)


def test_kubernetes_gives_each_service_credentials_of_its_own() -> None:
    (secret,) = of_kind("Secret")
    data = secret["stringData"]
    roles = {module: role for role, module in db_access.MODULES.items()}
    keys_seen: dict[str, str] = {}
    for module in services():
        (container,) = containers(deployment_of(module))
        env = {entry["name"]: entry for entry in container["env"]}
        wanted = {POSTGRES_DSN}
        if _uses(module, REDIS_URL):
            wanted.add(REDIS_URL)
        if module in KAFKA_USERS:
            wanted.add(KAFKA_PASSWORD)
            assert env[KAFKA_USER]["value"] == KAFKA_USERS[module]
        assert wanted <= set(env), module
        for setting in wanted:
            key = env[setting]["valueFrom"]["secretKeyRef"]["key"]
            assert keys_seen.setdefault(key, module) == module, f"{module} shares {key}"
            if setting != KAFKA_PASSWORD:
                assert _url_user(data[key]) == roles[module], (module, key)
    (job,) = of_kind("Job")
    for container in pod_containers(job):
        (entry,) = container["env"]
        assert _url_user(data[entry["valueFrom"]["secretKeyRef"]["key"]]) == db_access.MIGRATOR
    # No two placeholders alike: a deployment that replaces some but not all
    # still never has two services on one password.
    passwords = [
        urlsplit(v).password or v
        for k, v in data.items()
        if k not in {"reservation-id-secret", *K8S_NOT_SECRET}
    ]
    assert len(passwords) == len(set(passwords))


# Keys every instance that holds them must hold alike: the record keys (what
# one gateway signs, every consumer verifies) and the page-token key (a
# token one reservation service issued, another reads). Each comes from one
# secret, the same for every holder.
RECORD_KEYS = tuple(
    variable(ReservationIdSecret, name)
    for name in ("reservation_id_secret", "reservation_key_id", "reservation_verify_keys")
)
PAGE_TOKEN_SECRET = variable(ReservationSettings, "page_token_secret")
SHARED_KEYS = (*RECORD_KEYS, PAGE_TOKEN_SECRET)
# Placeholders that are no secret: the current key's id, and no other key
# accepted (a forgotten placeholder must never verify a record).
NOT_SECRET = {"RESERVATION_KEY_ID": "k1", "RESERVATION_VERIFY_KEYS": "{}"}
K8S_NOT_SECRET = {"reservation-key-id": "k1", "reservation-verify-keys": "{}"}


def test_compose_gives_every_holder_of_a_shared_key_the_same_one() -> None:
    sources: dict[str, set[str]] = {}
    for module in services():
        (name,) = compose_services_running(module)
        env = compose()["services"][name]["environment"]
        for setting in SHARED_KEYS:
            if not _uses(module, setting):
                continue
            assert setting in env, f"{name} is not given {setting}"
            (source,) = COMPOSE_SECRET.findall(str(env[setting]))
            assert env[setting] == f"${{{source}:?set it in deploy/.env}}", (name, setting)
            sources.setdefault(setting, set()).add(source)
    assert set(sources) == set(SHARED_KEYS)
    assert all(len(found) == 1 for found in sources.values()), sources


def test_kubernetes_gives_every_holder_of_a_shared_key_the_same_one() -> None:
    sources: dict[str, set[str]] = {}
    for module in services():
        (container,) = containers(deployment_of(module))
        env = {entry["name"]: entry for entry in container["env"]}
        for setting in SHARED_KEYS:
            if not _uses(module, setting):
                continue
            assert setting in env, f"{module} is not given {setting}"
            ref = env[setting].get("valueFrom", {}).get("secretKeyRef")
            assert ref is not None, f"{module}: {setting} is not from the Secret"
            sources.setdefault(setting, set()).add(ref["key"])
    assert set(sources) == set(SHARED_KEYS)
    assert all(len(found) == 1 for found in sources.values()), sources


def test_the_record_key_placeholders_are_settings_the_services_accept() -> None:
    (secret,) = of_kind("Secret")
    data = secret["stringData"]
    for key, value in K8S_NOT_SECRET.items():
        assert data[key] == value, key
    keys = ReservationIdSecret(
        reservation_id_secret=data["reservation-id-secret"],
        reservation_key_id=data["reservation-key-id"],
        reservation_verify_keys=data["reservation-verify-keys"],
    ).record_keys()
    assert (keys.key_id, set(keys.secrets)) == ("k1", {"k1"})
    dotenv = _dotenv()
    for name, value in NOT_SECRET.items():
        assert dotenv[name] == value, name
    keys = ReservationIdSecret(
        reservation_id_secret=dotenv["RESERVATION_ID_SECRET"],
        reservation_key_id=dotenv["RESERVATION_KEY_ID"],
        reservation_verify_keys=dotenv["RESERVATION_VERIFY_KEYS"],
    ).record_keys()
    assert (keys.key_id, set(keys.secrets)) == ("k1", {"k1"})
    minimum = ReservationSettings.model_fields["page_token_secret"].metadata[0].min_length
    assert len(dotenv["RESERVATION_PAGE_TOKEN_SECRET"]) >= minimum
    assert len(data["reservation-page-token-secret"]) >= minimum


def test_no_token_secret_is_shared_anywhere_in_deploy() -> None:
    """Services verify tokens with public keys only (a JWKS): no HS256
    secret is named anywhere in the deployment files."""
    found = [
        str(path.relative_to(ROOT))
        for path in DEPLOY.rglob("*")
        if path.is_file()
        and path.suffix not in {".json"}
        and re.search(r"hs256", path.read_text(errors="replace"), re.I)
    ]
    assert not found, found


# -- the network ---------------------------------------------------------------

FRONT = {"app.kubernetes.io/component": "grpc-front"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
    return True


def _pod_labels(document: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = document["spec"]["template"]["metadata"]["labels"]
    return labels


def _policies_for(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in of_kind("NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]


def _workloads() -> list[dict[str, Any]]:
    return [*of_kind("Deployment"), *of_kind("Job")]


def test_everything_is_denied_unless_a_policy_allows_it() -> None:
    deny = manifests()[("NetworkPolicy", "default-deny")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for workload in _workloads():
        allowing = [p for p in _policies_for(_pod_labels(workload)) if p["spec"]["podSelector"]]
        assert allowing, f"{workload['metadata']['name']}: no policy names it"


def test_only_the_front_reaches_the_public_services_and_only_prometheus_the_metrics() -> None:
    for module, service in services().items():
        deployment = deployment_of(module)
        (container,) = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        sources: dict[Any, list[dict[str, Any]]] = {}
        for policy in _policies_for(_pod_labels(deployment)):
            for rule in policy["spec"].get("ingress", []):
                for port in rule["ports"]:
                    sources.setdefault(port["port"], []).extend(rule["from"])
        grpc = sources.get("grpc", []) + sources.get(service.port, [])
        if module == "payment_service":
            webhook = sources.pop("webhook", []) + sources.pop(webhook_port(), [])
            assert webhook == [{"podSelector": {"matchLabels": FRONT}}], module
        # The consumers serve health checks only (the kubelet's, from the node).
        if module != "consumer_service":
            assert grpc == [{"podSelector": {"matchLabels": FRONT}}], module
        else:
            assert grpc == [], f"{module} takes calls from {grpc}"
        metrics = sources.get("metrics", []) + sources.get(service.metrics_port, [])
        assert metrics and all(
            source["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
            and "namespaceSelector" in source
            for source in metrics
        ), module
        assert set(sources) <= {"grpc", "metrics", ports["grpc"], ports["metrics"]}


def _egress_ports(labels: dict[str, str]) -> set[int]:
    return {
        port["port"]
        for policy in _policies_for(labels)
        for rule in policy["spec"].get("egress", [])
        for port in rule["ports"]
        if port["port"] != 53
    }


def test_only_the_services_that_use_a_store_reach_it() -> None:
    stores = {POSTGRES_DSN: 5432, REDIS_URL: 6379, KAFKA_USER: 9093}
    for module in services():
        deployment = deployment_of(module)
        reached = _egress_ports(_pod_labels(deployment))
        wanted = {
            port
            for setting, port in stores.items()
            if _uses(module, setting) and (setting != KAFKA_USER or module in KAFKA_USERS)
        }
        assert reached == wanted, module
    (job,) = of_kind("Job")
    assert _egress_ports(_pod_labels(job)) == {5432}
    front = _egress_ports(FRONT)
    grpc = {s.port for m, s in services().items() if m != "consumer_service"}
    assert front == grpc | {webhook_port()}


# -- Envoy's retries: only what is safe to send twice --------------------------

# Methods a second copy of which changes nothing: reads, watches, and the
# calls whose idempotency key makes a copy the same request.
SAFE_TO_RETRY = {
    "GatewayService": {"Reserve"},
    "ReservationService": {
        "GetEvent",
        "GetReservation",
        "ListEvents",
        "ListReservations",
        "GetSeatMap",
    },
    # Reads: a stream opened again starts from the current state.
    "NotifierService": {"WatchReservation", "WatchEvent", "WatchSeatMap"},
    "PaymentService": {"Pay", "GetPayment"},
}
KEYED = {"Reserve", "Pay"}


def _public_methods() -> Iterator[tuple[str, Any]]:
    for module in ("gateway", "reservation", "notifier", "payment"):
        descriptor = importlib.import_module(f"ticketing.v1.{module}_service_pb2").DESCRIPTOR
        for service in descriptor.services_by_name.values():
            for method in service.methods:
                yield service.name, method


def _route_of(path: str) -> dict[str, Any]:
    for route in envoy_virtual_host()["routes"]:
        match = route["match"]
        if match.get("path") == path or path.startswith(match.get("prefix", "\0")):
            found: dict[str, Any] = route
            return found
    raise AssertionError(f"no route for {path}")


def test_envoy_retries_only_methods_safe_to_repeat() -> None:
    retried = set()
    for service, method in _public_methods():
        route = _route_of(f"/ticketing.v1.{service}/{method.name}")
        if "retry_policy" in route.get("route", {}):
            retried.add(method.name)
            assert method.name in SAFE_TO_RETRY[service], f"{service}.{method.name} is retried"
        fields = {field.name for field in method.input_type.fields}
        if method.name in KEYED:
            assert "idempotency_key" in fields, method.name
        if method.name == "CreateEvent" and not {"request_id", "idempotency_key"} & fields:
            # No key: a second copy would be a second event.
            assert method.name not in retried
    assert retried >= KEYED
    for unsafe in ("CreateEvent", "UpdateEvent", "PauseSale", "ResumeSale", "CloseSale"):
        assert unsafe not in retried
    assert "CancelReservation" not in retried


# -- payments: Stripe, its keys from secrets, its webhooks through the fronts ----


def webhook_port() -> int:
    """The payment services' webhook port, as compose and Kubernetes set it
    (alike)."""
    (name,) = compose_services_running("payment_service")
    port = int(compose()["services"][name]["environment"][WEBHOOK_PORT])
    (container,) = containers(deployment_of("payment_service"))
    env = {entry["name"]: entry for entry in container["env"]}
    assert env[WEBHOOK_PORT] == {"name": WEBHOOK_PORT, "value": str(port)}
    assert port > 0, "the stripe provider needs a webhook server"
    return port


def test_the_payment_settings_named_here_are_the_services_own() -> None:
    reads = services()["payment_service"].reads
    named = (PROVIDER, ALLOW_LOCAL, LOCAL_STACK, *STRIPE_SECRETS, WEBHOOK_PORT)
    assert not set(named) - reads, sorted(set(named) - reads)


def test_compose_payment_services_run_stripe_with_keys_from_the_operator() -> None:
    """Each key is a required variable (``${NAME:?...}``: no default), which
    deploy/.env leaves to the operator's environment."""
    names = compose_services_running("payment_service")
    assert names
    dotenv = _dotenv()
    for name in names:
        env = compose()["services"][name]["environment"]
        assert env[PROVIDER] == "stripe", name
        sources = []
        for setting in STRIPE_SECRETS:
            required = re.fullmatch(r"\$\{(\w+):\?[^}]+\}", str(env[setting]))
            assert required, f"{name}: {setting} is {env[setting]!r}, not a required variable"
            sources.append(required[1])
        assert len(set(sources)) == len(sources), sources
        assert set(sources) <= set(FROM_OPERATOR), sources
        assert not set(sources) & set(dotenv), "deploy/.env holds a value for Stripe's keys"


def test_kubernetes_payment_services_run_stripe_with_keys_from_the_secret() -> None:
    (container,) = containers(deployment_of("payment_service"))
    env = {entry["name"]: entry for entry in container["env"]}
    assert env[PROVIDER] == {"name": PROVIDER, "value": "stripe"}
    template = stripe_secret_template()
    assert (template["kind"], template["metadata"]["name"]) == ("Secret", "stripe")
    for setting, key in STRIPE_SECRET_KEYS.items():
        assert env[setting] == {
            "name": setting,
            "valueFrom": {"secretKeyRef": {"name": template["metadata"]["name"], "key": key}},
        }, setting
    assert not set(STRIPE_SECRETS) & set(config_map())
    # The template: the namespace the manifests go to, the keys read, no value.
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert template["metadata"]["namespace"] == kustomization["namespace"]
    assert set(template["stringData"]) == set(STRIPE_SECRET_KEYS.values())
    assert all(value.startswith("CHANGE-ME") for value in template["stringData"].values())
    # Never applied: `kubectl apply -k` would overwrite the real Secret.
    assert STRIPE_SECRET_TEMPLATE not in kustomization["resources"]
    assert ("Secret", template["metadata"]["name"]) not in manifests()


def _configuration_files() -> list[Path]:
    """What configures a deployment (not its documentation)."""
    return [
        ROOT / "Dockerfile",
        DEPLOY / ".env",
        DEPLOY / "compose.yaml",
        DEPLOY / "envoy.yaml",
        DEPLOY / "nginx.conf",
        DEPLOY / "prometheus.yml",
        *sorted((DEPLOY / "compose").iterdir()),
        *sorted(K8S.glob("*.yaml")),
    ]


def test_no_deploy_file_runs_the_local_provider() -> None:
    """The local provider moves no money: nothing here chooses it, or lets
    a payment service run it outside the local stack."""
    never = {ALLOW_LOCAL, LOCAL_STACK}
    for path in _configuration_files():
        text = path.read_text()
        assert not [name for name in never if name in text], path
        assert not re.search(rf"{PROVIDER}\s*[=:]\s*[\"']?local\b", text), path
    environments: dict[str, dict[str, Any]] = {
        f"compose {name}": spec.get("environment", {})
        for name, spec in compose()["services"].items()
    }
    environments["ConfigMap"] = config_map()
    for document in _workloads():
        for container in pod_containers(document):
            environments[f"{document['metadata']['name']}/{container['name']}"] = {
                entry["name"]: entry.get("value") for entry in container.get("env", [])
            }
    for where, env in environments.items():
        assert not never & set(env), where
        assert env.get(PROVIDER, "stripe") == "stripe", where
    active = [
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert not [name for name, _ in active if name in never]
    assert all(value.strip() == "stripe" for name, value in active if name == PROVIDER)


def _uncommented(conf: str) -> str:
    return re.sub(r"#[^\n]*", "", conf)


def nginx_blocks(text: str, head: str) -> list[tuple[str, str]]:
    """The blocks ``head ARGUMENTS { ... }`` of an nginx configuration's
    text (comments removed), as (arguments, body); nested blocks are in
    their parent's body."""
    found = []
    for match in re.finditer(rf"^\s*{head}\b([^{{;]*)\{{", text, re.M):
        depth, end = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        found.append((match[1].strip(), text[match.end() : end - 1]))
    return found


@dataclass(frozen=True)
class NginxWebhooks:
    """The server of an nginx configuration that takes Stripe's webhooks."""

    listen: list[str]
    server_name: list[str]
    certificate: str
    upstream_servers: list[str]
    others: list[str]  # the other servers' bodies


def nginx_webhooks(conf: str, scheme: str) -> NginxWebhooks:
    """The webhook server, held to what every nginx configuration here
    does: HTTPS; one location passing POST on the webhook path only (with
    ``scheme``) to the webhook upstream, and every other path 404."""
    ((_, http),) = nginx_blocks(_uncommented(conf), "http")
    servers = [body for _, body in nginx_blocks(http, "server")]
    (hook,) = [body for body in servers if WEBHOOK_PATH in body]
    others = [body for body in servers if body is not hook]
    assert others and all("grpc_pass" in body and "proxy_pass" not in body for body in others)
    locations = dict(nginx_blocks(hook, "location"))
    assert set(locations) == {f"= {WEBHOOK_PATH}", "/"}
    assert locations["/"].split() == ["return", "404;"]
    passed = locations[f"= {WEBHOOK_PATH}"]
    assert [(arg, body.split()) for arg, body in nginx_blocks(passed, "limit_except")] == [
        ("POST", ["deny", "all;"])
    ]
    assert re.findall(r"proxy_pass (\w+)://(\w+);", passed) == [(scheme, WEBHOOK_CLUSTER)]
    # Once sent, an event is never sent to a second instance.
    assert re.findall(r"proxy_next_upstream (.+);", passed) == ["error"]
    (listen,) = re.findall(r"^\s*listen ([^;]+);", hook, re.M)
    assert "ssl" in listen.split()
    (certificate,) = re.findall(r"^\s*ssl_certificate\s+(\S+);", hook, re.M)
    assert re.search(r"^\s*ssl_certificate_key\s+\S+;", hook, re.M)
    upstreams = dict(nginx_blocks(http, "upstream"))
    return NginxWebhooks(
        listen=listen.split(),
        server_name=re.findall(r"^\s*server_name ([^;]+);", hook, re.M),
        certificate=certificate,
        upstream_servers=re.findall(r"^\s*server (\S+)", upstreams[WEBHOOK_CLUSTER], re.M),
        others=others,
    )


def _mounted_at(service: str, path: str) -> bool:
    """Whether a compose service mounts a volume at ``path`` or above it."""
    # The source may be a ${...} whose message holds colons.
    volumes = [
        re.sub(r"\$\{[^}]*\}", "source", v) for v in compose()["services"][service]["volumes"]
    ]
    targets = [volume.split(":")[1] for volume in volumes]
    return any(path == target or path.startswith(target.rstrip("/") + "/") for target in targets)


def test_the_compose_nginx_passes_stripes_webhooks_and_nothing_else() -> None:
    webhooks = nginx_webhooks((DEPLOY / "compose" / "nginx.conf").read_text(), "http")
    (payment,) = compose_services_running("payment_service")
    assert webhooks.upstream_servers == [f"{payment}:{webhook_port()}"]
    # A listener of its own: no other server listens on its port.
    (port,) = [word for word in webhooks.listen if word.isdigit()]
    for other in webhooks.others:
        assert port not in re.findall(r"^\s*listen (\d+)", other, re.M)
    # Published by compose, with its certificate mounted where nginx reads it.
    published = [str(p).rsplit(":", 1) for p in compose()["services"]["nginx"]["ports"]]
    assert [host for host, target in published if target == port]
    assert _mounted_at("nginx", webhooks.certificate)


def test_the_production_nginx_passes_stripes_webhooks_and_nothing_else() -> None:
    webhooks = nginx_webhooks((DEPLOY / "nginx.conf").read_text(), "https")
    assert webhooks.upstream_servers
    assert all(server.endswith(f":{webhook_port()}") for server in webhooks.upstream_servers)
    # Beside the gRPC server on 443, under a host name of its own.
    assert webhooks.listen == ["443", "ssl"]
    assert webhooks.server_name and webhooks.server_name != ["_"]
    assert all("server_name" not in other for other in webhooks.others)
    conf = _uncommented((DEPLOY / "nginx.conf").read_text())
    assert "proxy_ssl_verify on;" in conf


def test_envoy_passes_stripes_webhooks_and_nothing_else() -> None:
    listener = envoy_listener(ENVOY_WEBHOOK)
    port = listener["address"]["socket_address"]["port_value"]
    assert port != envoy_listener(ENVOY_GRPC)["address"]["socket_address"]["port_value"]
    (chain,) = listener["filter_chains"]
    tls = chain["transport_socket"]["typed_config"]
    assert tls["@type"].endswith(".DownstreamTlsContext")
    (certificate,) = tls["common_tls_context"]["tls_certificates"]
    hook, rest = envoy_virtual_host(ENVOY_WEBHOOK)["routes"]
    assert hook["match"] == {
        "path": WEBHOOK_PATH,
        "headers": [{"name": ":method", "string_match": {"exact": "POST"}}],
    }
    assert hook["route"]["cluster"] == WEBHOOK_CLUSTER
    # Another instance only for an event that never reached one.
    retried_on = hook["route"].get("retry_policy", {}).get("retry_on", "connect-failure")
    assert set(retried_on.split(",")) <= {"connect-failure", "reset-before-request"}
    assert rest == {"match": {"prefix": "/"}, "direct_response": {"status": 404}}
    # The gRPC listener routes no such path.
    for route in envoy_virtual_host(ENVOY_GRPC)["routes"]:
        match = route["match"]
        assert match.get("path") != WEBHOOK_PATH
        assert not WEBHOOK_PATH.startswith(match.get("prefix", "\0")), route
    clusters = {c["name"]: c for c in envoy()["static_resources"]["clusters"]}
    cluster = clusters[WEBHOOK_CLUSTER]
    (group,) = cluster["load_assignment"]["endpoints"]
    (endpoint,) = group["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {
        "address": HOST_NAMES["payment_service"],
        "port_value": webhook_port(),
    }
    (check,) = cluster["health_checks"]
    assert check["http_health_check"]["path"] == WEBHOOK_HEALTH_PATH
    # HTTP/1.1 to the webhook servers, not the gRPC clusters' HTTP/2.
    assert "typed_extension_protocol_options" not in cluster
    # Compose mounts its certificate where Envoy reads it.
    assert _mounted_at("envoy", certificate["certificate_chain"]["filename"])
    assert _mounted_at("envoy", certificate["private_key"]["filename"])


def test_compose_publishes_only_the_webhook_listener_beyond_loopback() -> None:
    """Stripe must reach the webhook listener; everything else stays on the
    host's loopback, and the payment services' webhook port is published
    nowhere (only the fronts, on the compose network, reach it)."""
    (payment,) = compose_services_running("payment_service")
    spec = compose()["services"][payment]
    assert "ports" not in spec
    assert str(webhook_port()) in [str(port) for port in spec["expose"]]
    open_ports = [
        (name, str(port))
        for name, service in compose()["services"].items()
        for port in service.get("ports", [])
        if not str(port).startswith("127.0.0.1:")
    ]
    webhooks = nginx_webhooks((DEPLOY / "compose" / "nginx.conf").read_text(), "http")
    (listen,) = [word for word in webhooks.listen if word.isdigit()]
    assert [(name, port.rsplit(":", 1)[1]) for name, port in open_ports] == [("nginx", listen)]


def test_kubernetes_lets_only_the_front_reach_the_webhook_port() -> None:
    deployment = deployment_of("payment_service")
    (container,) = containers(deployment)
    # Started once the webhook server answers.
    assert container["startupProbe"]["httpGet"] == {
        "path": WEBHOOK_HEALTH_PATH,
        "port": "webhook",
        "scheme": "HTTP",
    }
    # The Service Envoy's webhook cluster resolves has the port.
    service = manifests()[("Service", HOST_NAMES["payment_service"])]
    ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert ports["webhook"] == webhook_port()
    webhook = {"webhook", webhook_port()}
    allowed = []
    for workload in _workloads():
        for policy in _policies_for(_pod_labels(workload)):
            for rule in policy["spec"].get("ingress", []):
                if webhook & {port["port"] for port in rule["ports"]}:
                    allowed.append((workload["metadata"]["name"], rule["from"]))
    assert allowed == [(deployment["metadata"]["name"], [{"podSelector": {"matchLabels": FRONT}}])]
    # The front's way there leads to the payment services only.
    for policy in _policies_for(FRONT):
        for rule in policy["spec"].get("egress", []):
            if webhook_port() in {port["port"] for port in rule["ports"]}:
                assert [port["port"] for port in rule["ports"]] == [webhook_port()]
                reached = [
                    d["metadata"]["name"]
                    for d in _workloads()
                    for target in rule["to"]
                    if _selects(target["podSelector"], _pod_labels(d))
                ]
                assert reached == [deployment["metadata"]["name"]]
