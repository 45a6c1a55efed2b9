"""OpenAI chat messages -> a radialog dialog, and running it.

How a request maps onto RaDialog's conversation format (the server keeps no state: the
whole dialog comes with every request, so conversations never share history):

- `system` / `developer` messages are ignored: RaDialog uses its own fixed system prompt
  (the one it was trained with); a different one would only make answers worse.
- At most one image per conversation, in the first user message (data URI; PNG, JPEG or
  DICOM bytes). The image message becomes RaDialog's report-generation turn: the image
  tokens and the classifier's predicted findings in RaDialog's report prompt.
  - If its text is empty or asks for a report ("report", "findings", "describe", ...)
    the answer to it is the report.
  - Otherwise the report is generated first (not returned) and the text is answered as
    a question about it, as RaDialog's follow-up tasks always see the report. Later
    requests regenerate that report (greedy, so the same text), which costs time: ask
    for the report first when you can.
- Later user messages are follow-ups. Slash commands expand to RaDialog's instructions
  (`/correct +effusion -pneumothorax`, `/easy`, `/summary`, `/impression`,
  `/translate German`); other text is a question.
- Assistant messages are the earlier answers, used as history as sent.
- Without an image the dialog is plain text with the same system prompt.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radialog.chat.session import Session, count_tokens, model_thresholds
from radialog.chat.streaming import TextDeltaStreamer
from radialog.imaging.io import XRay
from radialog.model.generation import GenerationOptions
from radialog.serve.errors import ApiError
from radialog.serve.schemas import ChatCompletionRequest, ImagePart, TextPart

_REPORT_REQUEST = re.compile(
    r"\b(report|findings?|describe|description|interpret|read this|what do you see)\b", re.I
)


@dataclass
class ParsedChat:
    """The request's dialog: the image (still encoded), and text turns."""

    image_url: str | None
    image_param: str | None
    # (role, text) after merging, system messages removed; alternates user/assistant.
    turns: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ChatOutcome:
    text: str
    kind: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    findings: dict[str, float] | None
    predicted: list[str] | None
    dropped_turns: int
    correction: dict[str, Any] | None
    report: str | None = None  # the current report after this turn
    original_report: str | None = None
    consistency: dict[str, Any] | None = None  # of a report generated in this request
    thresholds: dict[str, float] | None = None
    notices: list[str] = field(default_factory=list)
    gate: dict[str, Any] | None = None


def parse_messages(req: ChatCompletionRequest) -> ParsedChat:
    """Validate the message list and pull out the image; 400 with the reason otherwise."""
    image_url: str | None = None
    image_param: str | None = None
    merged: list[tuple[str, list[str]]] = []
    for i, msg in enumerate(req.messages):
        if msg.role in ("system", "developer"):
            continue
        texts: list[str] = []
        if isinstance(msg.content, str):
            texts.append(msg.content)
        elif msg.content is not None:
            for j, part in enumerate(msg.content):
                if isinstance(part, TextPart):
                    texts.append(part.text)
                elif isinstance(part, ImagePart):
                    param = f"messages[{i}].content[{j}].image_url"
                    if msg.role != "user":
                        raise ApiError(
                            400,
                            "only user messages may contain images",
                            "invalid_image_position",
                            param,
                        )
                    if image_url is not None:
                        raise ApiError(
                            400,
                            "one image per conversation: start a new conversation for another X-ray",
                            "too_many_images",
                            param,
                        )
                    if merged and msg.role == "user" and any(r == "assistant" for r, _ in merged):
                        raise ApiError(
                            400,
                            "the image must be in the first user message (it opens the report turn)",
                            "invalid_image_position",
                            param,
                        )
                    image_url, image_param = part.image_url.url, param
        if merged and merged[-1][0] == msg.role:
            merged[-1][1].extend(texts)  # consecutive messages of one role form one turn
        else:
            merged.append((msg.role, texts))
    turns = [(role, "\n\n".join(t for t in texts if t).strip()) for role, texts in merged]
    if not turns:
        raise ApiError(400, "messages contain no user message", "no_user_message", "messages")
    if turns[0][0] != "user":
        raise ApiError(
            400,
            "the conversation must start with a user message",
            "invalid_message_order",
            "messages",
        )
    if turns[-1][0] != "user":
        raise ApiError(
            400, "the last message must be from the user", "invalid_message_order", "messages"
        )
    for k, (role, text) in enumerate(turns):
        if role == "user" and not text and not (k == 0 and image_url is not None):
            raise ApiError(400, "a user message is empty", "empty_message", "messages")
    return ParsedChat(image_url, image_param, turns)


def options_for(req: ChatCompletionRequest, default_max: int, cap: int) -> GenerationOptions:
    """Decoding options: greedy unless temperature > 0 (OpenAI's convention: 0 = greedy)."""
    requested = req.max_completion_tokens or req.max_tokens or default_max
    temperature = req.temperature if req.temperature is not None else 0.0
    return GenerationOptions(
        max_new_tokens=min(requested, cap),
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
        top_p=req.top_p if req.top_p is not None else 1.0,
        seed=req.seed,
        frequency_penalty=req.frequency_penalty or 0.0,
        presence_penalty=req.presence_penalty or 0.0,
    )


def check_message_length(model: Any, chat: ParsedChat, options: GenerationOptions, limit: int):
    """400 (`context_length_exceeded`) when the last message alone, plus room for the answer,
    exceeds the model's context: refused before the request waits for the model. Longer
    history is dropped later, turn by turn (with a notice), by the session."""
    text = chat.turns[-1][1]
    answer = int(options.max_new_tokens or model.config.max_new_tokens)
    room = max(1, limit - answer)
    # No token is this long on average: refuse a huge message without tokenizing it.
    if len(text) > 32 * limit:
        size = f"{len(text):,} characters"
    else:
        tokens = count_tokens(model, text, prefix=False)
        if tokens <= room:
            return
        size = f"{tokens:,} tokens"
    raise ApiError(
        400,
        f"the last message is {size} long; the model reads at most {limit} tokens "
        f"(prompt + answer; {answer} are kept for the answer, and the report takes part of "
        "the rest): shorten it",
        "context_length_exceeded",
        "messages",
    )


def run_chat(
    model: Any,
    chat: ParsedChat,
    xray: XRay | None,
    options: GenerationOptions,
    *,
    max_context_tokens: int | None,
    on_text: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    repair: bool = True,
    gate: Any = None,
) -> ChatOutcome:
    """Rebuild the dialog from the messages and answer the last one (runs in a worker thread).
    `gate`: the input gate's verdict on the image (the caller screened it)."""
    session = Session(
        model,
        xray,
        max_context_tokens=max_context_tokens,
        options=options,
        repair=repair,
        should_stop=should_stop,
        gate=gate,
    )
    streamer = TextDeltaStreamer(model.codec, on_text or (lambda _t: None), should_stop)
    turns = list(chat.turns)
    final_text = turns[-1][1]
    history = turns[:-1]
    correction = None
    if xray is not None:
        first_text = turns[0][1]
        if not first_text or _REPORT_REQUEST.search(first_text):
            if len(turns) == 1:  # the image message itself is being answered
                if not repair:
                    text = session.report(streamer)
                    return _outcome(session, streamer, text, "report", None)
                # A repair may replace the draft after it is written: streamed text cannot be
                # taken back, so the checked report is sent in one piece.
                text = session.report()
                if on_text is not None and text:
                    on_text(text)
                return _outcome(session, streamer, text, "report", None)
            session.add_report_turn(history[1][1])
            history = history[2:]
        else:
            session.report()  # hidden: follow-ups need the report as the previous turn
    for k in range(0, len(history), 2):
        session.add_exchange(history[k][1], history[k + 1][1])
    reply = session.respond(final_text, streamer)
    if reply.correction is not None:
        correction = reply.correction.to_dict()
    return _outcome(session, streamer, reply.text, reply.kind, correction)


def _outcome(
    session: Session, streamer: TextDeltaStreamer, text: str, kind: str, correction: dict | None
) -> ChatOutcome:
    limit = session.options.max_new_tokens or int(session.model.config.max_new_tokens)
    # The streamer saw the real generated ids (EOS included when the model stopped itself).
    completion = streamer.tokens or session.last_completion_tokens
    stopped = bool(streamer.ids) and streamer.ids[-1] == session.model.codec.eos_token_id
    return ChatOutcome(
        text=text,
        kind=kind,
        prompt_tokens=session.last_prompt_tokens,
        completion_tokens=completion,
        finish_reason="length" if completion >= limit and not stopped else "stop",
        findings=dict(session.findings) if session.findings else None,
        predicted=list(session.predicted) if session.has_image else None,
        dropped_turns=session.dropped_turns,
        correction=correction,
        report=session.current_report,
        original_report=session.original_report,
        consistency=None if session.consistency is None else session.consistency.to_dict(),
        thresholds=(session.report_data or {}).get("thresholds")
        or (model_thresholds(session.model) if session.has_image else None),
        notices=list(session.notices),
        gate=None if session.gate is None else session.gate.to_dict(),
    )
