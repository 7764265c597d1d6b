"""``MicroBatcher``: concurrent single-text embedding requests coalesced into batched calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from types import TracebackType

import numpy as np

from semcache.embed.base import Embedder, check_text


class MicroBatcher:
    """Coalesces concurrent single-text requests into batched ``embed`` calls.

    ``workers`` threads (default: the embedder's ``parallelism``) take up to ``max_batch``
    queued texts, waiting at most ``max_wait_ms`` after the first, and embed them in one
    call; a worker that would start fewer than ``min_batch`` texts beside a running batch
    waits up to ``busy_wait_ms`` for more. A failing batch raises in every caller of it.
    Use as a context manager or call ``close()``.
    """

    def __init__(
        self,
        embedder: Embedder,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        *,
        workers: int | None = None,
        min_batch: int = 4,
        busy_wait_ms: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if workers is None:
            workers = int(getattr(embedder, "parallelism", 1) or 1)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if min_batch < 1:
            raise ValueError(f"min_batch must be >= 1, got {min_batch}")
        if busy_wait_ms < 0:
            raise ValueError(f"busy_wait_ms must be >= 0, got {busy_wait_ms}")
        self.embedder = embedder
        self.name, self.version, self.dim = embedder.name, embedder.version, embedder.dim
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.min_batch = min(min_batch, max_batch)
        self.busy_wait_s = busy_wait_ms / 1000.0
        self._queue: list[tuple[str, Future[np.ndarray]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0  # workers running a batch
        self.batch_sizes: list[int] = []  # the most recent batch sizes (for benchmarks)
        self._workers = [
            threading.Thread(target=self._run, name=f"semcache-embed-batcher-{i}", daemon=True)
            for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, text: str) -> Future[np.ndarray]:
        """Queue one text; the future resolves to its float32 ``[dim]`` vector."""
        future: Future[np.ndarray] = Future()
        item = (check_text(text), future)
        with self._cond:
            if self._closed:
                raise RuntimeError("MicroBatcher is closed")
            self._queue.append(item)
            self._cond.notify_all()  # an idle worker, or a busy-waiting one
        return future

    def embed_one(self, text: str) -> np.ndarray:
        """Embed one text, sharing a batch with concurrent callers (blocks)."""
        return self.submit(text).result()

    async def aembed_one(self, text: str) -> np.ndarray:
        """Async ``embed_one``: awaits the shared batch without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(text))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A whole batch goes straight to the wrapped embedder."""
        return self.embedder.embed(texts)

    def _take_batch(self) -> list[tuple[str, Future[np.ndarray]]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._queue and self._busy and len(self._queue) < self.min_batch:
                self._cond.wait_for(
                    lambda: len(self._queue) >= self.min_batch or not self._busy or self._closed,
                    timeout=self.busy_wait_s,
                )
            if self._queue and self.max_wait_s > 0 and len(self._queue) < self.max_batch:
                self._cond.wait_for(
                    lambda: len(self._queue) >= self.max_batch or self._closed,
                    timeout=self.max_wait_s,
                )
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            if batch:
                self._busy += 1
                self.batch_sizes.append(len(batch))
                if len(self.batch_sizes) > 4096:
                    del self.batch_sizes[:2048]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:  # closed and drained
                return
            try:
                self._embed_batch(batch)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _embed_batch(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        live = [(text, fut) for text, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        distinct = list(dict.fromkeys(text for text, _ in live))
        try:
            vectors = self.embedder.embed(distinct)
        except BaseException as exc:  # every waiting caller must hear about it
            for _, fut in live:
                fut.set_exception(exc)
            return
        row_of = {text: row for row, text in enumerate(distinct)}
        for text, fut in live:
            fut.set_result(np.array(vectors[row_of[text]], dtype=np.float32, copy=True))

    def close(self) -> None:
        """Finish queued requests, then stop the worker thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for worker in self._workers:
            if threading.current_thread() is not worker:
                worker.join()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
