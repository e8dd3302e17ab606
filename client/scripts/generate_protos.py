"""Regenerate (or check) the client's protobuf modules from its `.proto` files.

    python client/scripts/generate_protos.py          # rewrite the *_pb2.py / *_pb2.pyi files
    python client/scripts/generate_protos.py --check  # exit 1 if the checked-in files drifted

The code generator is pinned (`GRPCIO_TOOLS`) and run with `uvx`, independent of the
grpcio-tools in the workspace: protoc stamps its own protobuf version into the generated
modules and they refuse to import on an older protobuf runtime. grpcio-tools 1.67.1 bundles
protoc 27.2, so the stamp (5.27.2) sits below the client's protobuf floor (5.28) and the
code imports on every runtime the client allows (5.28 ... 7.x).

One edit is made to protoc's output: the files are added to the client's private
descriptor pool (`_proto/_pool.py`) instead of protobuf's default pool.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

GRPCIO_TOOLS = "grpcio-tools==1.67.1"
SRC = Path(__file__).resolve().parents[1] / "src"
PROTO_PACKAGE = "scann_serving/client/_proto"
PROTO_DIR = SRC / PROTO_PACKAGE
_DEFAULT_POOL = "_descriptor_pool.Default()"
_POOL_IMPORT = "from scann_serving.client._proto._pool import POOL as _POOL\n"


def proto_files() -> list[str]:
    """The `.proto` files, relative to `client/src` (their import paths)."""
    return sorted(f"{PROTO_PACKAGE}/{p.name}" for p in PROTO_DIR.glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on every `.proto` into `out_dir`; returns the generated files."""
    command = [
        "uvx", "--quiet", "--from", GRPCIO_TOOLS, "python", "-m", "grpc_tools.protoc",
        f"-I{SRC}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", *proto_files(),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=SRC)
    generated = sorted((out_dir / PROTO_PACKAGE).glob("*_pb2.py*"))
    for path in generated:
        if path.suffix == ".py":
            path.write_text(_use_private_pool(path.read_text()))
    return generated


def _use_private_pool(code: str) -> str:
    if code.count(_DEFAULT_POOL) != 1:
        raise RuntimeError("protoc output changed shape: expected one default-pool registration")
    code = code.replace(_DEFAULT_POOL, "_POOL")
    anchor = "# @@protoc_insertion_point(imports)\n"
    return code.replace(anchor, anchor + _POOL_IMPORT, 1)


def drifted(generated: list[Path], root: Path) -> list[str]:
    """Names of generated files whose checked-in copy is missing or different."""
    names = [p.name for p in generated]
    stale = [p.name for p in PROTO_DIR.glob("*_pb2.py*") if p.name not in names]
    changed = [
        p.name
        for p in generated
        if not (PROTO_DIR / p.name).exists() or (PROTO_DIR / p.name).read_bytes() != p.read_bytes()
    ]
    return sorted(stale + changed)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: regenerate, or with `--check` report drift."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check for drift")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generated = generate(Path(tmp))
        stale = drifted(generated, Path(tmp))
        if args.check:
            if stale:
                print(f"generated protobuf code drifted: {', '.join(stale)}; run {__file__}")
            return 1 if stale else 0
        for path in PROTO_DIR.glob("*_pb2.py*"):
            path.unlink()
        for path in generated:
            (PROTO_DIR / path.name).write_bytes(path.read_bytes())
    print(f"wrote {len(generated)} files to {PROTO_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
