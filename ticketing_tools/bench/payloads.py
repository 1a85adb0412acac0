"""Request bytes and metadata for each call, from ghz-style JSON templates.

Requests are serialized here, once per call, and sent through a generic
multicallable with no serializer; a template without actions is parsed and
serialized once for the whole run. As in ghz, a JSON array gives one message
per element and call ``n`` sends element ``n mod len``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from .templates import CallContext, CallTemplate, MethodNames, TemplateError, new_context

Metadata = tuple[tuple[str, str], ...]


class PayloadError(ValueError):
    """Call data or metadata that does not make a valid request."""


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} is not valid JSON ({exc}): {text[:200]}") from None


@dataclass(frozen=True)
class PayloadFactory:
    template: CallTemplate
    input_class: type[Message]
    cached: tuple[bytes, ...] | None = None

    @classmethod
    def create(cls, data: str | None, input_class: type[Message]) -> PayloadFactory:
        template = CallTemplate.compile(data or "{}")
        factory = cls(template=template, input_class=input_class)
        if template.is_static:
            messages = factory._messages(template.source)
            return cls(template=template, input_class=input_class, cached=messages)
        return factory

    def _messages(self, text: str) -> tuple[bytes, ...]:
        document = _json(text, "call data")
        items = document if isinstance(document, list) else [document]
        if not items:
            raise PayloadError("call data is an empty JSON array")
        return tuple(self._serialize(item) for item in items)

    def _serialize(self, item: Any) -> bytes:
        if not isinstance(item, dict):
            raise PayloadError(f"call data must be a JSON object or array of objects, got {item!r}")
        message = self.input_class()
        try:
            json_format.ParseDict(item, message)
        except json_format.ParseError as exc:
            name = self.input_class.DESCRIPTOR.full_name
            raise PayloadError(f"call data does not fit {name}: {exc}") from None
        return message.SerializeToString()

    @property
    def is_static(self) -> bool:
        return self.cached is not None

    def build(self, request_number: int, context: CallContext | None) -> bytes:
        """The request of call ``request_number``; ``context`` may be None
        only when the template is static."""
        messages = self.cached
        if messages is None:
            assert context is not None, "a templated request needs its call context"
            messages = self._messages(self.template.render(context))
        return messages[request_number % len(messages)]


@dataclass(frozen=True)
class MetadataFactory:
    template: CallTemplate
    cached: Metadata | None = None

    @classmethod
    def create(cls, metadata: str) -> MetadataFactory:
        template = CallTemplate.compile(metadata)
        factory = cls(template=template)
        if template.is_static:
            return cls(template=template, cached=factory._pairs(template.source))
        return factory

    @staticmethod
    def _pairs(text: str) -> Metadata:
        document = _json(text, "metadata")
        if not isinstance(document, dict) or not all(
            isinstance(value, str) for value in document.values()
        ):
            raise PayloadError('metadata must be a JSON object of strings, e.g. {"key":"value"}')
        # gRPC metadata keys are lower case on the wire; Python's gRPC insists.
        return tuple((key.lower(), value) for key, value in document.items())

    @property
    def is_static(self) -> bool:
        return self.cached is not None

    def build(self, context: CallContext | None) -> Metadata:
        if self.cached is not None:
            return self.cached
        assert context is not None, "templated metadata needs its call context"
        return self._pairs(self.template.render(context))


def check(
    data: str | None, metadata: str | None, input_class: type[Message], method: MethodNames
) -> None:
    """Renders both templates once, for a made-up first call, so bad data is
    reported before the run rather than as a thousand failed calls."""
    try:
        context = new_context("g0c0", 0, method)
        PayloadFactory.create(data, input_class).build(0, context)
        if metadata:
            MetadataFactory.create(metadata).build(context)
    except TemplateError as exc:
        raise PayloadError(str(exc)) from None


__all__ = [
    "CallContext",
    "Metadata",
    "MetadataFactory",
    "PayloadError",
    "PayloadFactory",
    "check",
]
