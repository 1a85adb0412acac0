"""Regenerates the Python code of ``protos/`` (``make proto``).

The generated packages are ``ticketing.v1`` (the public API) and
``ticketing.queue.v1`` (the Kafka records) at the repository root, mirroring
the proto packages, so generated modules import each other the way protoc
writes them. It is never edited by hand; ``tests/tools/test_protogen.py`` fails when
it drifts from the protos. Run from the repository root (``make proto`` does),
or name it with ``--root``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.rpc import error_details_pb2
from grpc_tools import protoc

PACKAGE_DIRS = (Path("ticketing") / "v1", Path("ticketing") / "queue" / "v1")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
# Every proto with its imports as one FileDescriptorSet, for tools that take a
# protoset (ghz --protoset, grpcurl -protoset), with the error details our
# errors carry, so that such a tool decodes them too (google.rpc.Status in
# grpc-status-details-bin, its BadRequest, ErrorInfo and RetryInfo).
PROTOSET = Path("protos") / "ticketing.protoset"
ERROR_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def proto_files(root: Path) -> list[Path]:
    return sorted(p for d in PACKAGE_DIRS for p in (root / "protos" / d).glob("*.proto"))


def generate(root: Path, out_dir: Path) -> list[Path]:
    """Writes the generated modules for every proto file under ``out_dir``."""
    include = resources.files("grpc_tools") / "_proto"
    bin_dir = Path(sys.executable).parent
    protos = [str(p) for p in proto_files(root)]
    _protoc(
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{root / 'protos'}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    )
    (out_dir / PROTOSET).parent.mkdir(parents=True, exist_ok=True)
    _protoc(
        f"-I{root / 'protos'}",
        f"-I{include}",
        # The .proto files googleapis-common-protos installs beside its modules.
        f"-I{Path(error_details_pb2.__file__).parents[2]}",
        f"--descriptor_set_out={out_dir / PROTOSET}",
        "--include_imports",
        *protos,
        *ERROR_PROTOS,
    )
    return generated_files(out_dir)


def _protoc(*args: str) -> None:
    if protoc.main(["grpc_tools.protoc", *args]) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))


def generated_files(base: Path) -> list[Path]:
    modules = [
        p
        for d in PACKAGE_DIRS
        if (base / d).is_dir()
        for p in (base / d).iterdir()
        if p.name.endswith(GENERATED_SUFFIXES)
    ]
    protoset = [base / PROTOSET] if (base / PROTOSET).is_file() else []
    return sorted(modules + protoset)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="protogen", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    root: Path = parser.parse_args(argv).root.resolve()
    if not proto_files(root):
        parser.error(f"no .proto files under {root / 'protos'}")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(root, Path(tmp))
        for old in generated_files(root):
            old.unlink()
        for path in fresh:
            target = root / path.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    # Every folder of the generated packages is a package: ticketing,
    # ticketing/v1, ticketing/queue, ticketing/queue/v1.
    packages = {p for d in PACKAGE_DIRS for p in (d, *d.parents) if p != Path(".")}
    for folder in sorted(packages):
        init = root / folder / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from protos/ by `make proto`; do not edit."""\n')
    # PEP 561: the generated stubs (.pyi) are the package's types.
    (root / "ticketing" / "py.typed").touch()
    print(f"generated {len(fresh)} files under {root / 'ticketing'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
