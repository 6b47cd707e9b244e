"""Real local OpenAI-compatible LLM servers for integration tests (no tests in here).

The stand-ins in ``tests/standins.py`` answer what we script; these helpers start the real
thing, so an integration test sees what an actual server does with our requests (which
``response_format`` it accepts, what it returns for ``usage``, how it fails on a prompt longer
than its context). Two servers, both CPU-only and both from the cache that
``.ci/build-llama.sh`` builds once per machine (nothing here is ever in the repo):

- llama.cpp's own ``llama-server`` (:func:`llama_server`), a static binary;
- llama-cpp-python's ``python -m llama_cpp.server`` (:func:`llama_cpp_python_server`), run by
  the interpreter of an environment where the cached wheel is installed with ``[server]``.

Each context manager starts its server on a free 127.0.0.1 port, waits until it answers,
yields the base URL for the ``openai`` client (``http://127.0.0.1:PORT/v1``) and stops the
process on exit, terminating it and killing it if it lingers. The server's output goes to a
log file, named in every error, because a server that fails to start says why only there.

Only the standard library is used, so importing this module costs nothing when the cache is
absent: tests call :func:`built_paths` and skip when it returns ``None``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Must match LLAMA_CPP_PYTHON_VERSION in .ci/build-llama.sh: the cache folder is keyed by it.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
DEFAULT_CACHE_ROOT = Path("/var/cache/digest-llama")


@dataclass(frozen=True)
class LlamaPaths:
    """What ``.ci/build-llama.sh`` leaves in the cache (the keys of its ``paths.env``)."""

    llama_server: Path  # LLAMA_SERVER: llama.cpp's server binary
    llama_cpp_wheel: Path  # LLAMA_CPP_WHEEL: install as "<wheel>[server]"
    smollm2_gguf: Path  # SMOLLM2_GGUF: SmolLM2-135M-Instruct, Q4_1 (~98 MB)
    gemma3_gguf: Path  # GEMMA3_GGUF: Gemma 3 270M, Q4_K_M (~253 MB)


def cache_dir() -> Path:
    """The cache folder for this version: ``$DIGEST_LLAMA_CACHE`` or /var/cache/digest-llama."""
    root = os.environ.get("DIGEST_LLAMA_CACHE") or DEFAULT_CACHE_ROOT
    return Path(root) / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}"


def built_paths(cache: Path | None = None) -> LlamaPaths | None:
    """The cached server, wheel and models, or ``None`` when the cache isn't (fully) built.

    The build script writes its marker ``.complete`` last, so a half-finished build (one that
    died, or one still running) reads as not built. Every path is checked to exist too: a
    cache someone pruned by hand should make tests skip, not fail with a confusing error.
    """
    folder = cache or cache_dir()
    env_file = folder / "paths.env"
    if not (folder / ".complete").is_file() or not env_file.is_file():
        return None
    values: dict[str, str] = {}
    for line in env_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    try:
        paths = LlamaPaths(
            llama_server=Path(values["LLAMA_SERVER"]),
            llama_cpp_wheel=Path(values["LLAMA_CPP_WHEEL"]),
            smollm2_gguf=Path(values["SMOLLM2_GGUF"]),
            gemma3_gguf=Path(values["GEMMA3_GGUF"]),
        )
    except KeyError:
        return None
    if not all(path.is_file() for path in vars(paths).values()):
        return None
    return paths


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it).

    Another process could take it before the server binds it; the context managers below
    notice the server exiting at start and try again with a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    """The server exited, or did not answer in time; the message ends with its log's tail."""


def _log_tail(log_path: Path, lines: int = 30) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# No proxy, whatever HTTP_PROXY says: the servers are on 127.0.0.1.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    """Whether GET ``url`` returns 200 (llama-server's /health says 503 while loading)."""
    try:
        with _DIRECT.open(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    """Terminate the process, and kill it if it is still there after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)


# Environment variables that llama_cpp.server would read as settings (pydantic-settings,
# case-insensitive; CONFIG_FILE by its __main__): a stray one, such as API_KEY, would change
# the server under test, so they are removed from its environment.
_SERVER_ENV = frozenset(
    {"CONFIG_FILE", "MODEL", "MODEL_ALIAS", "HOST", "PORT", "API_KEY", "N_CTX", "N_BATCH"}
    | {"N_UBATCH", "N_THREADS", "N_THREADS_BATCH", "N_GPU_LAYERS", "CHAT_FORMAT", "SEED"}
    | {"VERBOSE", "CACHE", "CACHE_TYPE", "CACHE_SIZE", "EMBEDDING", "FLASH_ATTN", "ROOT_PATH"}
)

_BIND_FAILURES = ("address already in use", "couldn't bind", "could not bind", "errno 98")


@contextmanager
def _serve(
    name: str,
    command_for_port: Callable[[int], list[str]],
    ready_path: str,
    *,
    log_path: Path | None,
    timeout: float,
    env: dict[str, str] | None,
    attempts: int = 3,
) -> Iterator[str]:
    """Start ``command_for_port(port)``, wait for ``ready_path`` to answer 200, yield the URL.

    Shared by both servers. A start that fails because the port was taken meanwhile is
    retried on a new port (``attempts`` in all); any other failure raises at once.
    """
    if log_path is None:
        handle, raw_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
        os.close(handle)
        log_path = Path(raw_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        port = free_port()
        command = command_for_port(port)
        with log_path.open("ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            # start_new_session: the server gets no terminal signals meant for pytest (a
            # Ctrl-C reaches us first, and we stop it in `finally`).
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    tail = _log_tail(log_path)
                    if attempt < attempts and any(word in tail.lower() for word in _BIND_FAILURES):
                        break  # the port was taken between free_port() and bind: retry
                    raise ServerStartError(
                        f"{name} exited with {process.returncode} before answering "
                        f"(log {log_path}):\n{tail}"
                    )
                if _answers(f"http://127.0.0.1:{port}{ready_path}"):
                    break
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"{name} did not answer {ready_path} within {timeout:g} s "
                        f"(log {log_path}):\n{_log_tail(log_path)}"
                    )
                time.sleep(0.2)
            if process.poll() is not None:
                continue  # the bind failure above: next attempt
            yield f"http://127.0.0.1:{port}/v1"
            return
        finally:
            _stop(process, grace=10)
    raise ServerStartError(f"{name} could not bind a port in {attempts} attempts (log {log_path})")


@contextmanager
def llama_server(
    gguf: Path | str,
    *,
    ctx: int = 4096,
    binary: Path | str | None = None,
    threads: int | None = None,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
    timeout: float = 120,
) -> Iterator[str]:
    """Run llama.cpp's ``llama-server -m GGUF -c CTX`` and yield its base URL (``.../v1``).

    ``binary`` defaults to the cached one (``LLAMA_SERVER`` in paths.env). Ready when
    ``/health`` answers 200: it says 503 while the model loads. ``ctx`` is the whole context
    (prompt + answer) of its one slot (``--parallel 1``, so a test gets the full ``ctx``).
    """
    if binary is None:
        paths = built_paths()
        if paths is None:
            raise FileNotFoundError(f"no llama-server: run .ci/build-llama.sh ({cache_dir()})")
        binary = paths.llama_server

    def command(port: int) -> list[str]:
        args = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
        args += ["-c", str(ctx), "--parallel", "1"]
        if threads is not None:
            args += ["--threads", str(threads)]
        return [*args, *extra_args]

    with _serve(
        "llama-server", command, "/health", log_path=log_path, timeout=timeout, env=None
    ) as url:
        yield url


@contextmanager
def llama_cpp_python_server(
    gguf: Path | str,
    *,
    ctx: int = 4096,
    python: Path | str = sys.executable,
    threads: int | None = None,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
    timeout: float = 120,
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server --model GGUF --n_ctx CTX`` and yield its base URL.

    ``python`` is the interpreter of an environment with the cached wheel installed as
    ``<wheel>[server]`` (the project's own venv need not have it). Ready when ``/v1/models``
    answers 200. Its default thread count is half the CPUs (one thread on 2 cores); pass
    ``threads`` to set both ``--n_threads`` and ``--n_threads_batch``.
    """

    def command(port: int) -> list[str]:
        args = [str(python), "-m", "llama_cpp.server", "--model", str(gguf)]
        args += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(ctx)]
        if threads is not None:
            args += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
        return [*args, *extra_args]

    # The server's settings are pydantic-settings read from the environment too (MODEL, PORT,
    # HOST, ...): drop those so that only the command line counts.
    env = {key: value for key, value in os.environ.items() if key.upper() not in _SERVER_ENV}
    with _serve(
        "llama_cpp.server", command, "/v1/models", log_path=log_path, timeout=timeout, env=env
    ) as url:
        yield url
