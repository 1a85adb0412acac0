"""The services install without the tools' dependencies.

One distribution holds every package; the ``tools`` extra adds what only the
tools need (plotting, histograms). A service's runtime must import without
any of it, and without importing the tools package at all.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

TOOL_ONLY = ("matplotlib", "hdrh")
SERVICES = (
    "gateway",
    "reservation_service",
    "consumer_service",
    "notifier_service",
    "payment_service",
)

# Runs each service's composition root with the tools' modules made unimportable.
PROBE = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is a tool's dependency")
        return None
sys.meta_path.insert(0, Block())
for service in {services!r}:
    __import__(service + ".app")
    __import__(service + ".__main__")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(loaded)
"""


def test_tool_dependencies_are_only_in_the_tools_extra() -> None:
    requirements = metadata.requires("ticketing-suite") or []
    for name in ("matplotlib", "hdrhistogram"):
        declared = [r for r in requirements if r.split("==")[0].split(";")[0].strip() == name]
        assert declared, f"{name} is not declared at all"
        assert all('extra == "tools"' in r for r in declared), declared


def test_every_service_imports_without_the_tools_or_their_dependencies() -> None:
    probe = PROBE.format(blocked=(*TOOL_ONLY, "ticketing_tools"), services=SERVICES)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
