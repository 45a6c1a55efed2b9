"""Server settings: one dataclass, filled from CLI flags or by tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_api_key() -> str | None:
    return os.environ.get("RADIALOG_API_KEY") or None


@dataclass
class ServeSettings:
    """Limits and options of the HTTP API.

    max_upload_mb: largest accepted image (decoded bytes); request bodies are capped at the
        base64 size of that plus a little room for the JSON around it.
    max_concurrency: model calls running at once (each in a worker thread).
    queue_size: requests allowed to wait for a worker; beyond that the server answers 503.
    timeout_s: per-request limit, queue wait included; beyond it the server answers 504.
    max_new_tokens: default and upper bound for generated tokens per answer.
    max_context_tokens: history budget per conversation (older turns are dropped); never
        more than the model's own context (`config.llm.max_length`).
    max_pixels: largest image accepted, in pixels (width x height x frames), checked from the
        file header before decoding. The default (25 MP, e.g. 5,000 x 5,000) fits the largest
        real chest X-rays (about 4,300 x 3,500) with room to spare.
    repair: repair generated reports that disagree with their findings list (a request may
        turn it off with `"repair": false`).
    api_key: when set, every /v1 request needs `Authorization: Bearer <key>` or `X-API-Key`.
    """

    max_upload_mb: float = 20.0
    max_concurrency: int = 1
    queue_size: int = 8
    timeout_s: float = 120.0
    max_new_tokens: int = 300
    max_context_tokens: int | None = None
    max_pixels: int = 25_000_000
    repair: bool = True
    api_key: str | None = field(default_factory=_env_api_key)
    model_name: str | None = None

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0:
            raise ValueError("max_upload_mb must be positive")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.queue_size < 0:
            raise ValueError("queue_size must be 0 or more")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be positive")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_body_bytes(self) -> int:
        # base64 grows data by 4/3; 64 KiB leaves room for the JSON messages around it.
        return self.max_upload_bytes * 4 // 3 + 64 * 1024
