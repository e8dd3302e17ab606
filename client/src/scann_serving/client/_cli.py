"""`scann-query`: query a served retrieval model from the shell.

    scann-query --target localhost:8500 --model retrieval --query 42 -k 10
    scann-query --target localhost:8500 --model retrieval --embedding 0.1,0.2,... --json
    scann-query --target localhost:8500 --model retrieval status
    scann-query --target localhost:8500 --model retrieval metadata
    scann-query --target localhost:8500 --model retrieval --wait 60 --query 1 2 3
    scann-query --model retrieval --query 42 --allow genre=Comedy --where "year>=1990"

Exit status: 0 on success, 1 when the call fails (one line on stderr), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from scann_serving.client._client import RetrievalClient
from scann_serving.client._config import DEFAULT_TIMEOUT, TLS
from scann_serving.client._errors import (
    DeadlineExceeded,
    NotFound,
    ScannServingError,
    Unavailable,
)
from scann_serving.client._format import metadata_text, result_text, status_text

_COMMANDS = ("status", "metadata")


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # Subcommands repeat the options (so they may follow the command) without resetting them.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    add = parser.add_argument
    add("--target", default=default("localhost:8500"), help="HOST:PORT or dns:///HOST:PORT")
    add("--model", default=default(None), help="served model name (required)")
    add("--version", type=int, default=default(None), help="pin a model version")
    add("--label", default=default(None), help="pin a version label")
    add("--timeout", type=float, default=default(DEFAULT_TIMEOUT), help="deadline in seconds")
    add("--json", action="store_true", default=default(False), help="print JSON")
    add("--ca", default=default(None), help="TLS: CA bundle (PEM) for the server certificate")
    add("--cert", default=default(None), help="mTLS: client certificate (PEM)")
    add("--key", default=default(None), help="mTLS: client private key (PEM)")
    add(
        "--wait",
        type=float,
        default=default(0.0),
        metavar="SECONDS",
        help="first wait up to SECONDS for the model to have an AVAILABLE version",
    )
    add("--tls", action="store_true", default=default(False), help="TLS with system roots")
    add("--server-name", default=default(None), help="TLS: name to verify the certificate for")


def build_parser() -> argparse.ArgumentParser:
    """The `scann-query` argument parser."""
    parser = argparse.ArgumentParser(
        prog="scann-query",
        description="Top-k retrieval, status and metadata from a ScaNN model served over "
        "TensorFlow Serving's gRPC API.",
    )
    _common_options(parser, suppress=False)
    query = parser.add_argument_group("retrieval (the default command)")
    query.add_argument("--query", nargs="+", action="extend", default=[], help="query key(s)")
    query.add_argument(
        "--embedding",
        action="append",
        default=[],
        help="a query embedding as comma-separated floats (repeat for a batch)",
    )
    query.add_argument("-k", type=int, default=None, help="candidates per query")
    query.add_argument("--exclude", nargs="+", action="extend", help="identifiers to leave out")
    query.add_argument(
        "--allow",
        nargs="+",
        action="extend",
        metavar="NS=VALUE",
        help="only candidates with one of these values in each namespace named "
        "(retrieve_filtered), e.g. --allow genre=Comedy genre=Drama",
    )
    query.add_argument(
        "--deny", nargs="+", action="extend", metavar="NS=VALUE", help="never these values"
    )
    query.add_argument(
        "--where",
        action="append",
        metavar="RESTRICT",
        help='a numeric restrict that must hold, e.g. "year>=1990" (repeatable)',
    )
    commands = parser.add_subparsers(dest="command", metavar="{status,metadata}")
    for name in _COMMANDS:
        sub = commands.add_parser(name, help=f"print the model's {name}")
        _common_options(sub, suppress=True)
    return parser


def _tls(args: argparse.Namespace) -> TLS | None:
    if not (args.tls or args.ca or args.cert or args.key):
        return None
    return TLS.from_files(args.ca, args.cert, args.key, server_name_override=args.server_name)


def _embeddings(texts: Sequence[str]) -> list[list[float]]:
    try:
        return [[float(x) for x in text.replace(",", " ").split()] for text in texts]
    except ValueError as exc:
        raise ValueError(f"--embedding: pass comma-separated floats ({exc})") from exc


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    with RetrievalClient(
        args.target, model=args.model, timeout=args.timeout, tls=_tls(args)
    ) as client:
        pin = {"version": args.version, "label": args.label}
        if args.wait > 0:
            _wait_ready(client, args.wait)
        if args.command == "status":
            status = client.status(version=args.version)
            return _json(status.to_dict()) if args.json else status_text(status)
        if args.command == "metadata":
            meta = client.metadata(**pin)
            return _json(meta.to_dict()) if args.json else metadata_text(meta)
        if bool(args.query) == bool(args.embedding):
            parser.error("pass --query KEY... or --embedding FLOATS (one of them)")
        if args.query:
            result = client.retrieve(
                args.query,
                args.k,
                exclude=args.exclude,
                allow=args.allow,
                deny=args.deny,
                where=args.where,
                **pin,
            )
        else:
            result = client.search(_embeddings(args.embedding), args.k, **pin)
        queries = args.query or [f"embedding[{i}]" for i in range(len(args.embedding))]
        if args.json:
            return _json({"queries": queries, **result.to_dict()})
        return result_text(result, queries)


def _json(data: Any) -> str:
    # Identifiers as UTF-8 text, not \u escapes: readable, and still what any JSON parser
    # (jq, json.loads) returns byte for byte.
    return json.dumps(data, indent=2, ensure_ascii=False)


def _write(text: str) -> None:
    """Prints `text`; where the locale's encoding cannot show it (LANG=C on old systems,
    a latin-1 terminal and a CJK title), writes UTF-8, the encoding of the wire and of
    JSON, rather than fail after a successful call."""
    try:
        sys.stdout.write(text + "\n")
    except UnicodeEncodeError:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            raise
        sys.stdout.flush()
        buffer.write((text + "\n").encode("utf-8"))
    sys.stdout.flush()


def _wait_ready(client: RetrievalClient, seconds: float) -> None:
    """Poll GetModelStatus until a version is AVAILABLE (a server starting up answers
    UNAVAILABLE, and NOT_FOUND until the model's first version is loaded)."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        try:
            status = client.status(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            if status.available:
                return
            last = ", ".join(f"{v.version}: {v.state}" for v in status.versions) or "no versions"
        except (Unavailable, NotFound, DeadlineExceeded) as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise Unavailable(f"model {client.model!r} not AVAILABLE after {seconds:g} s ({last})")
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `scann-query`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model is required (the served model's name)")
    try:
        _write(_run(args, parser))
    except (ScannServingError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"scann-query: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
