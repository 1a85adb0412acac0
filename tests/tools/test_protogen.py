"""The generated code (ticketing/v1, ticketing/queue/v1, the protoset) must be
exactly what protos/ produces."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from ticketing_tools import protogen


def test_generated_code_matches_the_protos(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    root = pytestconfig.rootpath
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in protogen.generate(root, tmp_path)}
    committed = {p.relative_to(root): p.read_bytes() for p in protogen.generated_files(root)}
    assert protogen.PROTOSET in committed
    assert sorted(committed) == sorted(fresh), "run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"generated code is out of date, run `make proto`: {stale}"


def test_the_generated_package_is_typed(pytestconfig: pytest.Config) -> None:
    assert (pytestconfig.rootpath / "ticketing" / "py.typed").is_file()


def test_the_protoset_describes_the_error_details(pytestconfig: pytest.Config) -> None:
    """A tool given only the protoset (grpcurl -protoset, ghz --protoset)
    decodes the google.rpc.Status details our errors carry."""
    shipped = descriptor_pb2.FileDescriptorSet.FromString(
        (pytestconfig.rootpath / protogen.PROTOSET).read_bytes()
    )
    files = {file.name: file for file in shipped.file}
    assert {"google/rpc/status.proto", "google/rpc/error_details.proto"} <= set(files)
    details = {message.name for message in files["google/rpc/error_details.proto"].message_type}
    assert {"ErrorInfo", "BadRequest", "RetryInfo"} <= details
    # Self-contained: every import is in the set too.
    for file in shipped.file:
        assert set(file.dependency) <= set(files), file.name
