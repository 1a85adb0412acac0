"""Regenerates the Python code of ``protos/`` (``make proto``).

The generated package is ``ticketing.v1`` at the repository root, mirroring the
proto package, so generated modules import each other the way protoc writes
them. It is never edited by hand; ``tests/tools/test_protogen.py`` fails when
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

from grpc_tools import protoc

PACKAGE_DIR = Path("ticketing") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files(root: Path) -> list[Path]:
    return sorted((root / "protos" / PACKAGE_DIR).glob("*.proto"))


def generate(root: Path, out_dir: Path) -> list[Path]:
    """Writes the generated modules for every proto file under ``out_dir``."""
    include = resources.files("grpc_tools") / "_proto"
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{root / 'protos'}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p) for p in proto_files(root)),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return generated_files(out_dir)


def generated_files(base: Path) -> list[Path]:
    folder = base / PACKAGE_DIR
    return sorted(p for p in folder.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="protogen", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    root: Path = parser.parse_args(argv).root.resolve()
    if not proto_files(root):
        parser.error(f"no .proto files under {root / 'protos' / PACKAGE_DIR}")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(root, Path(tmp))
        target = root / PACKAGE_DIR
        target.mkdir(parents=True, exist_ok=True)
        for old in generated_files(root):
            old.unlink()
        for path in fresh:
            shutil.copyfile(path, target / path.name)
    for init in (root / "ticketing" / "__init__.py", target / "__init__.py"):
        if not init.exists():
            init.write_text('"""Generated from protos/ by `make proto`; do not edit."""\n')
    # PEP 561: the generated stubs (.pyi) are the package's types.
    (root / "ticketing" / "py.typed").touch()
    print(f"generated {len(fresh)} files in {target.relative_to(root)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
