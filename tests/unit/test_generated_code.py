"""The generated code in ticketing/v1 must be exactly what protos/ produces."""

from __future__ import annotations

from pathlib import Path

from ticketing_common import protogen


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in protogen.generate(tmp_path)}
    committed = {p.name: p.read_bytes() for p in protogen.generated_files(protogen.ROOT)}
    assert sorted(committed) == sorted(fresh), "run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"generated code is out of date, run `make proto`: {stale}"
