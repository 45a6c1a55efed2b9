"""Streaming generated text as it is produced, and stopping generation early.

`TextDeltaStreamer` plugs into `RadialogModel.generate(..., streamer=...)` (the
transformers streamer protocol: `put(token_ids)` per step, `end()` once) and calls
`on_text(delta)` with each new piece of decoded text. It decodes the whole answer so far
with the model's codec each step (so EOS and the RaDialog "</s>" separator are handled
exactly as in the final answer) and holds back text that may still change (an
incomplete UTF-8 character, a partial "</s>").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers.generation.streamers import BaseStreamer

from radialog.model.prompt import SEP2


class GenerationCancelled(Exception):
    """Raised inside generation when the caller gave up (timeout, client disconnected)."""


class TextDeltaStreamer(BaseStreamer):
    """Calls `on_text(delta)` with new text; `should_stop()` True aborts generation."""

    def __init__(
        self,
        codec: Any,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.codec = codec
        self.on_text = on_text
        self.should_stop = should_stop
        self.ids: list[int] = []
        self.emitted = ""
        self._prompt_seen = False
        self.tokens = 0

    def put(self, value: Any) -> None:
        if self.should_stop is not None and self.should_stop():
            raise GenerationCancelled("generation cancelled")
        if not self._prompt_seen:  # generate() first passes the prompt (empty with embeddings)
            self._prompt_seen = True
            return
        ids = value.tolist() if hasattr(value, "tolist") else list(value)
        if ids and isinstance(ids[0], list):  # (batch=1, n)
            ids = ids[0]
        self.ids.extend(int(i) for i in ids)
        self.tokens += len(ids)
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        text = self.codec.decode(self.ids)
        if not final:
            text = _stable_prefix(text)
        if text.startswith(self.emitted) and len(text) > len(self.emitted):
            delta = text[len(self.emitted) :]
            self.emitted = text
            self.on_text(delta)


def _stable_prefix(text: str) -> str:
    """Text minus a tail that the next token may still change."""
    text = text.rstrip("\ufffd")  # an incomplete multi-byte character
    for k in range(len(SEP2) - 1, 0, -1):
        if text.endswith(SEP2[:k]):
            return text[:-k].rstrip()
    return text.rstrip()  # trailing spaces are stripped from final answers too
