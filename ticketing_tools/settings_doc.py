"""The README's configuration tables and ``deploy/env.example``, generated
from the settings declarations so that they cannot drift from them.

    python -m ticketing_tools.settings_doc           # exit 1 if a file is stale
    python -m ticketing_tools.settings_doc --write   # regenerate (make settings-doc)

Run from the repository root (make does), or name it with ``--root``. The
tables are written between marker comments in README.md; the prose around
them is left alone.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from consumer_service.settings import ConsumerSettings
from gateway.settings import GatewaySettings
from notifier_service.settings import NotifierSettings
from payment_service.settings import PaymentSettings, StripeSettings
from reservation_service.settings import ReservationSettings
from ticketing_common.config import (
    AcceptedRequestsStore,
    AuthSettings,
    KafkaSettings,
    PostgresClient,
    RedisClient,
    ReservationIdSecret,
    ServerSettings,
    Settings,
    declaring_class,
    group_defaults,
    group_of,
    variable,
)

from .admin import AdminSettings
from .stack import RunningStack, StackConfig
from .stack.launcher import StackSigningKey

# Who reads which settings object; the services first.
SERVICES: Mapping[str, type[Settings]] = {
    "gateway": GatewaySettings,
    "reservation_service": ReservationSettings,
    "consumer_service": ConsumerSettings,
    "notifier_service": NotifierSettings,
    "payment_service": PaymentSettings,
}
TOOLS: Mapping[str, type[Settings]] = {
    "stack": StackConfig,
    "demo": RunningStack,
    "admin": AdminSettings,
}
USERS: Mapping[str, type[Settings]] = {**SERVICES, **TOOLS}

# The declaring classes, in the order the docs list them.
SECTIONS: tuple[type[Settings], ...] = (
    ServerSettings,
    AuthSettings,
    ReservationIdSecret,
    PostgresClient,
    RedisClient,
    AcceptedRequestsStore,
    KafkaSettings,
    GatewaySettings,
    ReservationSettings,
    ConsumerSettings,
    NotifierSettings,
    PaymentSettings,
    StripeSettings,
    StackConfig,
    StackSigningKey,
    RunningStack,
    AdminSettings,
)
# env.example's heading of the shared ones (a service's own: its name).
SHARED_TITLES: Mapping[type[Settings], str] = {
    ServerSettings: "gRPC server",
    AuthSettings: "Authentication",
    ReservationIdSecret: "Reservation ids",
    PostgresClient: "PostgreSQL",
    RedisClient: "Redis",
    AcceptedRequestsStore: "Accepted requests",
    KafkaSettings: "Kafka",
    StripeSettings: "Stripe",
}

README = Path("README.md")
ENV_EXAMPLE = Path("deploy") / "env.example"
NBSP = "\N{NO-BREAK SPACE}"

ENV_EXAMPLE_HEADER = """\
# TICKETING_* settings for a production deployment, generated from the settings
# declarations by `make settings-doc` (edit those, not this file). Every
# service reads only the variables it needs (see "Used by" in the README's
# configuration table); one shared file plus a few per-instance lines is
# enough. Active lines are examples to adapt; commented lines show the
# default.
"""


@dataclass(frozen=True)
class Setting:
    """One variable, wherever it is read."""

    variable: str
    declared_by: type[Settings]
    name: str
    field: FieldInfo
    # The default each user gets (a service's group may change it).
    defaults: dict[str, Any]

    @property
    def users(self) -> list[str]:
        return list(self.defaults)

    @property
    def for_services(self) -> bool:
        return any(user in SERVICES for user in self.defaults)


def _declared_default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        extra = field.json_schema_extra
        return extra.get("shown_default") if isinstance(extra, dict) else None
    return field.default


def _leaves(cls: type[Settings], defaults: Mapping[str, Any]) -> Iterator[tuple[Setting, Any]]:
    for name, field in cls.model_fields.items():
        group = group_of(field)
        if group is not None:
            yield from _leaves(group, group_defaults(field))
        else:
            default = defaults[name] if name in defaults else _declared_default(field)
            setting = Setting(variable(cls, name), declaring_class(cls, name), name, field, {})
            yield setting, default


def collect() -> list[Setting]:
    """Every declared setting, in the order of ``SECTIONS``, then of declaration."""
    found: dict[str, Setting] = {}
    for user, cls in USERS.items():
        for leaf, default in _leaves(cls, {}):
            setting = found.setdefault(leaf.variable, leaf)
            if (setting.declared_by, setting.name) != (leaf.declared_by, leaf.name):
                raise ValueError(
                    f"{leaf.variable} is declared twice: {setting.declared_by.__name__}."
                    f"{setting.name} and {leaf.declared_by.__name__}.{leaf.name}"
                )
            setting.defaults[user] = default
    for setting in found.values():
        if setting.declared_by not in SECTIONS:
            raise KeyError(f"{setting.declared_by.__name__} has no place in SECTIONS")
    return sorted(found.values(), key=lambda s: SECTIONS.index(s.declared_by))


# -- rendering ---------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _default_text(setting: Setting, *, code: str = "`") -> str:
    shown = {user: default for user, default in setting.defaults.items()}
    if len({repr(v) for v in shown.values()}) == 1:
        (value,) = {repr(v): v for v in shown.values()}.values()
        if value is PydanticUndefined:
            return "required"
        return "unset" if value in (None, ()) else f"{code}{_value(value)}{code}"
    return ", ".join(f"{user} {code}{_value(value)}{code}" for user, value in shown.items())


_SIGNS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def _bounds(field: FieldInfo, *, words: bool = False) -> list[str]:
    parts = []
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge | annotated_types.Gt):
            kind = "ge" if isinstance(rule, annotated_types.Ge) else "gt"
        elif isinstance(rule, annotated_types.Le | annotated_types.Lt):
            kind = "le" if isinstance(rule, annotated_types.Le) else "lt"
        else:
            continue
        parts.append(f"{(_WORDS if words else _SIGNS)[kind]} {getattr(rule, kind)}")
    choices = get_args(field.annotation)
    if choices and all(isinstance(c, str) for c in choices):
        parts.append("one of " + ", ".join(f"`{c}`" for c in choices))
    return parts


def _sentence(text: str) -> str:
    """``text`` with a capital, unless its first word is a name (``gRPC``)."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.islower() else text


def _users_text(users: Sequence[str]) -> str:
    if all(service in users for service in SERVICES):
        users = ["all services", *(u for u in users if u not in SERVICES)]
    return ", ".join(users)


def _heading(setting: Setting) -> str:
    title = SHARED_TITLES.get(setting.declared_by)
    services = [user for user in setting.users if user in SERVICES]
    return f"{title} ({_users_text(services)})" if title else ", ".join(services)


def render_table(settings: Sequence[Setting]) -> str:
    lines = [
        "| Variable | Default | Bounds | Used by | Meaning |",
        "|----------|---------|--------|---------|---------|",
    ]
    for s in settings:
        cells = (
            f"`{s.variable}`",
            _default_text(s),
            ", ".join(_bounds(s.field)),
            _users_text(s.users),
            s.field.description or "",
        )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def tables(settings: Sequence[Setting]) -> dict[str, str]:
    """The launcher's table (settings only the tools read) and the services'."""
    return {
        "launcher": render_table([s for s in settings if not s.for_services]),
        "services": render_table([s for s in settings if s.for_services]),
    }


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=79, initial_indent="# ", subsequent_indent="# ")


def render_env_example(settings: Sequence[Setting]) -> str:
    out = [ENV_EXAMPLE_HEADER]
    section = None
    for s in (s for s in settings if s.for_services):
        heading = _heading(s)
        if heading != section:
            out.append(f"\n# --- {heading} ".ljust(80, "-") + "\n")
            section = heading
        description = s.field.description or ""
        facts = [f"Default: {_default_text(s, code='')}"]
        facts.extend(_bounds(s.field, words=True))
        # No line break inside a fact (no-break spaces, made plain again below).
        kept = [fact.replace(" ", NBSP) for fact in facts]
        text = f"{_sentence(description)}. {'; '.join(kept)}."
        lines = _comment(text.replace("`", ""))
        out.append("\n" + "\n".join(lines).replace(NBSP, " ") + "\n")
        if s.field.examples:
            out.append(f"{s.variable}={_value(s.field.examples[0])}\n")
        else:
            values = {repr(v): v for v in s.defaults.values()}
            single = next(iter(values.values())) if len(values) == 1 else None
            shown = "" if single is None or s.field.default_factory else _value(single)
            out.append(f"# {s.variable}={shown}\n")
    return "".join(out)


def _marker(name: str) -> tuple[str, str]:
    return (
        f"<!-- settings-table:{name} (generated by make settings-doc) -->\n",
        f"<!-- /settings-table:{name} -->\n",
    )


def with_tables(readme: str, generated: Mapping[str, str]) -> str:
    """``readme`` with each table between its markers replaced."""
    for name, table in generated.items():
        start, end = _marker(name)
        before, found, rest = readme.partition(start)
        if not found or end not in rest:
            raise ValueError(f"README.md lacks the markers of the {name} table: {start.strip()}")
        readme = before + start + table + end + rest.partition(end)[2]
    return readme


def expected(root: Path) -> dict[Path, str]:
    """What README.md and deploy/env.example should hold."""
    settings = collect()
    return {
        root / README: with_tables((root / README).read_text(), tables(settings)),
        root / ENV_EXAMPLE: render_env_example(settings),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="settings_doc", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    parser.add_argument("--write", action="store_true", help="regenerate the files")
    args = parser.parse_args(argv)
    stale = [path for path, text in expected(args.root).items() if path.read_text() != text]
    if args.write:
        for path, text in expected(args.root).items():
            path.write_text(text)
        for path in stale:
            print(f"regenerated {path.relative_to(args.root)}", file=sys.stderr)
        return 0
    for path in stale:
        print(f"{path.relative_to(args.root)} is stale: run `make settings-doc`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
