"""Request body limit and bounded model concurrency with a wait queue.

Model calls run in a small thread pool so the event loop keeps answering (health checks,
503s, streaming) while a report is generated. At most `max_concurrency` calls run and
`queue_size` wait; any request beyond that is refused at once with 503 + Retry-After
instead of piling up. A slot is freed only when its worker thread has really finished,
so a timed-out request cannot let more work onto the CPU than configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radialog.serve.errors import ApiError, error_body

log = logging.getLogger(__name__)
T = TypeVar("T")


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body exceeds the limit.

    An HTTPException so that FastAPI's body parsing re-raises it (it turns other errors
    into 400) and the app's handler renders it as a JSON 413.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _too_large_message(max_bytes))


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, before or while reading them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await _drain(receive)
            await self._send_413(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _drain(receive)
                await self._send_413(send)

    async def _send_413(self, send: Send) -> None:
        body = json.dumps(
            error_body(413, _too_large_message(self.max_bytes), "payload_too_large")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# Read (and drop) at most this much of a refused body. A client still uploading when the
# server answers and closes gets a connection reset that can swallow the 413 itself.
DRAIN_LIMIT = 64 * 2**20


async def _drain(receive: Receive) -> None:
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _too_large_message(max_bytes: int) -> str:
    return (
        f"request body is larger than the server's limit ({max_bytes / 2**20:.1f} MiB); "
        "send a smaller image (downscale it or export it as JPEG)"
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class CancelToken:
    """Set when the caller gave up (timeout, client gone); generation checks it per token."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class ModelRunner:
    """Runs model calls in worker threads with bounded concurrency and a bounded queue."""

    def __init__(self, max_concurrency: int, queue_size: int) -> None:
        self.max_concurrency = max_concurrency
        self.capacity = max_concurrency + queue_size
        self._executor: ThreadPoolExecutor | None = None  # started on first use, see _pool()
        self._admitted = 0  # running + waiting; touched only on the event loop thread
        self._mean_s = 5.0  # running mean of call durations, for Retry-After

    @property
    def admitted(self) -> int:
        return self._admitted

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Admit a call or raise 503. Must be called on the event loop thread."""
        if self._admitted >= self.capacity:
            raise ApiError(
                503,
                f"the server is busy ({self._admitted} requests running or queued); "
                "retry after the number of seconds in the Retry-After header",
                "server_busy",
                headers={"Retry-After": str(self.retry_after())},
            )
        loop = asyncio.get_running_loop()
        self._admitted += 1
        start = time.monotonic()

        def timed() -> T:
            nonlocal start
            start = time.monotonic()
            return fn(*args)

        fut = self._pool().submit(timed)

        def done(f: Future) -> None:
            elapsed = time.monotonic() - start
            loop.call_soon_threadsafe(self._release, elapsed, f.cancelled())

        fut.add_done_callback(done)
        return fut

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float, token: CancelToken) -> T:
        """Admit, run in a worker thread and wait at most `timeout` seconds (else 504)."""
        fut = self.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except TimeoutError:
            token.cancel()
            raise ApiError(
                504,
                f"the request took longer than the server's limit of {timeout:g} s; "
                "ask for fewer tokens (max_tokens) or retry later",
                "timeout",
            ) from None
        except asyncio.CancelledError:
            token.cancel()  # client went away: stop generating for nobody
            raise

    def retry_after(self) -> int:
        waiting = max(1, self._admitted - self.max_concurrency + 1)
        return max(1, math.ceil(self._mean_s * waiting / self.max_concurrency))

    def _release(self, elapsed: float, cancelled: bool) -> None:
        self._admitted -= 1
        if not cancelled:
            self._mean_s = 0.8 * self._mean_s + 0.2 * elapsed

    def _pool(self) -> ThreadPoolExecutor:
        # A fresh pool after shutdown: an app may go through several lifespans (ASGI test
        # clients start and stop it per request), and each must be able to serve.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.max_concurrency, thread_name_prefix="radialog-model"
            )
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
