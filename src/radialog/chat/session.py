"""A dialog about one chest X-ray: its report, follow-up tasks and history.

The conversation is kept as turns and rendered with `radialog.model.prompt.Conversation`
(the one definition of RaDialog's format). The first exchange is always RaDialog's
report-generation turn (image tokens + predicted findings) and the report; follow-ups are
appended as `USER: {instruction} ASSISTANT:` exactly as RaDialog's downstream tasks do.

When the history outgrows the token budget, the oldest follow-up exchanges are dropped
(the system prompt, the image/report exchange and the newest turns are kept); the count
is recorded in `dropped_turns` and a notice in `notices`, instead of failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radialog import DISCLAIMER
from radialog.chat.commands import CommandError, parse_command, resolve_label
from radialog.chat.prompts import (
    EASY_LANGUAGE_PROMPT,
    IMPRESSION_PROMPT,
    SUMMARY_PROMPT,
    correction_prompt,
    translate_prompt,
)
from radialog.errors import InvalidInputError
from radialog.imaging.io import XRay, read_xray
from radialog.labels import CHEXPERT_LABELS, NO_FINDING
from radialog.model.prompt import Conversation, findings_text, report_prompt

log = logging.getLogger(__name__)

USER, ASSISTANT = "user", "assistant"
# Turn kinds; "report" and "correct" answers are reports (the correction check labels them).
REPORT_KINDS = ("report", "correct")
REPORT_REQUEST = "Write a report for this X-ray."


@dataclass
class GenerationOptions:
    """Decoding settings. Greedy (deterministic) unless do_sample is set."""

    max_new_tokens: int | None = None  # None: the model config's max_new_tokens
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    # OpenAI's repetition penalties (-2..2); 0 = off, as in RaDialog's evaluation.
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0

    def __post_init__(self) -> None:
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if not -2.0 <= value <= 2.0:
                raise InvalidInputError(f"{name} must be between -2 and 2, got {value}")

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"do_sample": self.do_sample}
        if self.max_new_tokens is not None:
            out["max_new_tokens"] = self.max_new_tokens
        if self.do_sample:
            out.update(temperature=self.temperature, top_p=self.top_p)
        if self.frequency_penalty or self.presence_penalty:
            out.update(
                frequency_penalty=self.frequency_penalty, presence_penalty=self.presence_penalty
            )
        return out


@dataclass
class Turn:
    """One message. `prompt` is what the model sees for user turns (the instruction),
    `text` what people see (e.g. "/easy" or the question)."""

    role: str
    text: str
    kind: str = "ask"
    prompt: str | None = None

    @property
    def model_text(self) -> str:
        return self.prompt if self.prompt is not None else self.text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "kind": self.kind, "text": self.text}
        if self.prompt is not None and self.prompt != self.text:
            out["prompt"] = self.prompt
        return out


@dataclass
class CorrectionResult:
    """What a correction changed, checked by re-labelling the new report.

    added / removed: requested label -> True when it took effect (an addition is positive
    in the new report; a removal is neither positive nor uncertain any more).
    other_changes: labels nobody asked to change whose state (positive / uncertain /
    absent) changed: label -> (before, after).
    kept_old: nothing to change, so no generation happened (RaDialog's KEEP_OLD).
    """

    report: str
    previous_report: str
    prompt: str | None
    added: dict[str, bool] = field(default_factory=dict)
    removed: dict[str, bool] = field(default_factory=dict)
    other_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    kept_old: bool = False

    @property
    def applied(self) -> bool:
        return all(self.added.values()) and all(self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "prompt": self.prompt,
            "added": self.added,
            "removed": self.removed,
            "other_changes": {k: list(v) for k, v in self.other_changes.items()},
            "applied": self.applied,
            "kept_old": self.kept_old,
        }

    def summary(self) -> str:
        """One line for people: what took effect and what else changed."""
        if self.kept_old:
            return "Nothing to change; the report is unchanged."
        parts = [f"{'added' if ok else 'NOT added'}: {k.lower()}" for k, ok in self.added.items()]
        parts += [
            f"{'removed' if ok else 'NOT removed'}: {k.lower()}" for k, ok in self.removed.items()
        ]
        if self.other_changes:
            other = ", ".join(f"{k.lower()} {a}->{b}" for k, (a, b) in self.other_changes.items())
            parts.append(f"also changed: {other}")
        return "Correction check: " + "; ".join(parts)


@dataclass
class Reply:
    """The answer to one user message."""

    text: str
    kind: str
    correction: CorrectionResult | None = None


class Session:
    """A dialog about one image (or none) with a RadialogModel.

    `image` may be a path, file bytes, an `XRay` or a 2-D array. `max_context_tokens`
    bounds prompt + answer; None uses the model's prompt limit (`config.llm.max_length`).
    """

    def __init__(
        self,
        model: Any,
        image: str | Path | bytes | XRay | np.ndarray | None = None,
        max_context_tokens: int | None = None,
        options: GenerationOptions | None = None,
    ) -> None:
        self.model = model
        self.xray = _as_xray(image)
        self.options = options or GenerationOptions()
        self.max_context_tokens = max_context_tokens
        self.turns: list[Turn] = []
        self.findings: dict[str, float] = {}
        self.predicted: list[str] = []
        self.report_data: dict[str, Any] | None = None
        self.dropped_turns = 0
        self.notices: list[str] = []
        self.last_prompt_tokens = 0
        self.last_completion_tokens = 0
        self._analysis: Any = None

    # ---- state ---------------------------------------------------------------------------

    @property
    def has_image(self) -> bool:
        return self.xray is not None

    @property
    def current_report(self) -> str | None:
        """The latest report text (the generated one, or the latest correction)."""
        for i in range(len(self.turns) - 1, 0, -1):
            turn = self.turns[i]
            if turn.role == ASSISTANT and self.turns[i - 1].kind in REPORT_KINDS:
                return turn.text
        return None

    def set_findings(self, findings: dict[str, float], predicted: Iterable[str]) -> None:
        self.findings = {k: float(findings[k]) for k in CHEXPERT_LABELS if k in findings}
        self.predicted = list(predicted)

    # ---- the report ------------------------------------------------------------------------

    def analyse(self) -> Any:
        """Classifier probabilities and LLM image tokens for the image (computed once)."""
        if self._analysis is None and self.xray is not None:
            self._analysis = self.model.analyse_image(self.xray)
            self.set_findings(self._analysis.findings, self._analysis.predicted)
        return self._analysis

    def report(self, streamer: Any = None) -> str:
        """Generate the report (the first turn) if there is none yet; return it."""
        if self.xray is None:
            raise InvalidInputError(
                "this session has no image; start it with an X-ray to get a report"
            )
        if self.turns and self.turns[0].kind == "report":
            return self.turns[1].text
        analysis = self.analyse()
        self.turns.insert(0, Turn(USER, REPORT_REQUEST, "report", self.report_prompt()))
        t1 = time.perf_counter()
        try:
            text = self._generate(streamer)
        except BaseException:
            self.turns.pop(0)
            raise
        self.turns.insert(1, Turn(ASSISTANT, text, "report"))
        timings = dict(analysis.timings)
        timings["generate"] = time.perf_counter() - t1
        # The analysis may have been computed earlier (cached): count its own timings.
        timings["total"] = timings["generate"] + sum(analysis.timings.values())
        self.report_data = {
            "findings": dict(self.findings),
            "predicted": list(self.predicted),
            "report": text,
            "model": _model_name(self.model),
            "disclaimer": DISCLAIMER,
            "timings": {k: round(float(v), 4) for k, v in timings.items()},
        }
        return text

    def report_prompt(self) -> str:
        return report_prompt(findings_text(self.predicted))

    def add_report_turn(self, report_text: str) -> None:
        """Start the dialog from a known report (e.g. one a client sends back)."""
        self.analyse()
        self.turns = [
            Turn(USER, REPORT_REQUEST, "report", self.report_prompt()),
            Turn(ASSISTANT, report_text, "report"),
        ]

    # ---- follow-ups ------------------------------------------------------------------------

    def respond(self, text: str, streamer: Any = None) -> Reply:
        """Answer one user message: a slash command (see `radialog.chat.commands`) or a question.

        Session commands (/reset, /save, /help, /quit) belong to the caller and are refused.
        """
        cmd = parse_command(text)
        if cmd is None:
            return Reply(self.ask(text, streamer), "ask")
        if cmd.name == "correct":
            result = self.correct(cmd.add, cmd.remove, streamer)
            return Reply(result.report, "correct", result)
        if cmd.name == "easy":
            return Reply(self.easy_language(streamer), "easy")
        if cmd.name == "summary":
            return Reply(self.summarize(streamer), "summary")
        if cmd.name == "impression":
            return Reply(self.impression(streamer), "impression")
        if cmd.name == "translate":
            return Reply(self.translate(cmd.argument, streamer), "translate")
        raise CommandError(f"/{cmd.name} is a terminal command; it cannot be sent as a message")

    def user_turn(self, text: str) -> Turn:
        """The user turn a message becomes (slash commands expanded to their instruction)."""
        cmd = parse_command(text)
        if cmd is None:
            return Turn(USER, text.strip(), "ask")
        if cmd.name == "correct":
            prompt = correction_prompt(cmd.remove, cmd.add)
            return Turn(USER, text.strip(), "correct", prompt or text.strip())
        prompts = {
            "easy": EASY_LANGUAGE_PROMPT,
            "summary": SUMMARY_PROMPT,
            "impression": IMPRESSION_PROMPT,
        }
        if cmd.name in prompts:
            return Turn(USER, text.strip(), cmd.name, prompts[cmd.name])
        if cmd.name == "translate":
            return Turn(USER, text.strip(), "translate", translate_prompt(cmd.argument))
        raise CommandError(f"/{cmd.name} is a terminal command; it cannot be sent as a message")

    def add_exchange(self, user_text: str, answer: str) -> None:
        """Append an earlier exchange without generating (history sent back by a client)."""
        turn = self.user_turn(user_text)
        self.turns += [turn, Turn(ASSISTANT, answer, turn.kind)]

    def ask(self, question: str, streamer: Any = None) -> str:
        """A free question about the image and report."""
        question = question.strip()
        if not question:
            raise InvalidInputError("the question is empty")
        return self._follow_up(Turn(USER, question, "ask"), streamer)

    def easy_language(self, streamer: Any = None) -> str:
        return self._follow_up(Turn(USER, "/easy", "easy", EASY_LANGUAGE_PROMPT), streamer)

    def summarize(self, streamer: Any = None) -> str:
        return self._follow_up(Turn(USER, "/summary", "summary", SUMMARY_PROMPT), streamer)

    def impression(self, streamer: Any = None) -> str:
        return self._follow_up(Turn(USER, "/impression", "impression", IMPRESSION_PROMPT), streamer)

    def translate(self, language: str, streamer: Any = None) -> str:
        try:
            prompt = translate_prompt(language)
        except ValueError:
            raise InvalidInputError("say which language to translate into, e.g. German") from None
        return self._follow_up(Turn(USER, f"/translate {language}", "translate", prompt), streamer)

    def correct(
        self,
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
        streamer: Any = None,
    ) -> CorrectionResult:
        """Ask for a corrected report (RaDialog's correction prompt) and check the result.

        `add`: findings the report misses; `remove`: findings it wrongly has. Label names
        may be short forms ("effusion"). The new report is re-labelled to tell which
        requests took effect and what else changed.
        """
        from radialog.chat.commands import format_correct
        from radialog.labeler import label_report

        add_l = _unique(resolve_label(x) for x in add)
        remove_l = _unique(resolve_label(x) for x in remove)
        if set(add_l) & set(remove_l):
            raise InvalidInputError(
                f"{', '.join(set(add_l) & set(remove_l))} is both added and removed"
            )
        if self.xray is not None:
            self.report()
        previous = self.current_report
        if previous is None:
            raise InvalidInputError("there is no report to correct yet")
        prompt = correction_prompt(remove_l, add_l)
        if prompt is None:  # only No Finding requested: RaDialog keeps the old report
            return CorrectionResult(previous, previous, None, kept_old=True)
        new = self._follow_up(
            Turn(USER, format_correct(add_l, remove_l), "correct", prompt), streamer
        )
        return check_correction(previous, new, prompt, add_l, remove_l, label_report)

    def reset(self) -> None:
        """Forget the follow-ups; keep the image and its generated report."""
        self.turns = self.turns[:2] if self.turns and self.turns[0].kind == "report" else []
        self.dropped_turns = 0
        self.notices.clear()

    # ---- generation ------------------------------------------------------------------------

    def _follow_up(self, turn: Turn, streamer: Any) -> str:
        if self.xray is not None:
            self.report()
        self.turns.append(turn)
        try:
            answer = self._generate(streamer)
        except BaseException:
            self.turns.pop()  # a failed turn leaves the history as it was
            raise
        self.turns.append(Turn(ASSISTANT, answer, turn.kind))
        return answer

    def conversation(self, turns: list[Turn] | None = None) -> Conversation:
        conv = Conversation()
        for t in self.turns if turns is None else turns:
            if t.role == USER:
                conv.add_user(t.model_text)
            else:
                conv.add_assistant(t.text)
        return conv

    def fitted_turns(self) -> list[Turn]:
        """The turns that fit the token budget.

        Kept: the system prompt, the image/report exchange and the newest turns; the oldest
        follow-up exchanges (user + answer) are dropped first. If even that does not fit,
        the model's own left-truncation applies and a notice says so.
        """
        budget = self.prompt_budget()
        turns = list(self.turns)
        head = 2 if len(turns) > 2 and turns[0].kind == "report" else 0
        dropped = 0
        while len(turns) - head > 1 and self._count(self.conversation(turns).render()) > budget:
            del turns[head : head + 2]
            dropped += 2
        self.dropped_turns = dropped
        if dropped:
            self._notice(f"{dropped} older turns were left out to fit the model's context")
        if self._count(self.conversation(turns).render()) > budget:
            self._notice(
                f"the report and message exceed the context budget ({budget} tokens); "
                "the model sees only their end"
            )
        return turns

    def _notice(self, text: str) -> None:
        log.info(text)
        self.notices.append(text)

    def _generate(self, streamer: Any) -> str:
        conv = self.conversation(self.fitted_turns())
        gen = self.options.kwargs()
        if streamer is not None:
            gen["streamer"] = streamer
        if self.options.do_sample and self.options.seed is not None:
            import torch

            torch.manual_seed(self.options.seed)
        tokens = self.analyse().image_tokens if conv.has_image else None
        self.last_prompt_tokens = self._count(conv.render())
        answer = self.model.generate(conv, image_tokens=tokens, **gen).strip()
        self.last_completion_tokens = self._count(answer, prefix=False) + 1  # + EOS
        return answer

    def prompt_budget(self) -> int:
        """Tokens the prompt may use: max_context_tokens minus the answer, or the model's limit."""
        if self.max_context_tokens is not None:
            answer = self.options.max_new_tokens or int(self.model.config.max_new_tokens)
            return max(1, self.max_context_tokens - answer)
        return _model_prompt_limit(self.model)

    def _count(self, text: str, prefix: bool = True) -> int:
        return count_tokens(self.model, text, prefix=prefix)

    # ---- saving ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        from radialog.chat.persist import session_dict

        return session_dict(self)

    def to_json(self, path: str | Path) -> Path:
        from radialog.chat.persist import write_json

        return write_json(self, path)

    def to_markdown(self, path: str | Path) -> Path:
        from radialog.chat.persist import write_markdown

        return write_markdown(self, path)


def check_correction(
    previous: str,
    new: str,
    prompt: str | None,
    add: list[str],
    remove: list[str],
    label_report: Any,
) -> CorrectionResult:
    """Compare the labeler's reading of the report before and after a correction."""
    before = label_report(previous).labels
    after = label_report(new).labels
    added = {label: after.get(label) == 1 for label in add}
    removed = {label: after.get(label) in (0, None) for label in remove}
    other: dict[str, tuple[str, str]] = {}
    for label in CHEXPERT_LABELS:
        if label in add or label in remove or label == NO_FINDING:
            continue  # No Finding follows from the others; not a separate change
        a, b = _state(before.get(label)), _state(after.get(label))
        if a != b:
            other[label] = (a, b)
    return CorrectionResult(new, previous, prompt, added, removed, other)


def count_tokens(model: Any, text: str, prefix: bool = True) -> int:
    """Tokens the model sees for a rendered prompt, image embeddings included."""
    segments = model.codec.encode_segments(text, add_prefix=prefix)
    return sum(len(s) for s in segments) + (len(segments) - 1) * int(model.num_image_tokens)


def _state(value: int | None) -> str:
    return {1: "positive", -1: "uncertain"}.get(value, "absent")  # type: ignore[arg-type]


def _model_prompt_limit(model: Any) -> int:
    """The model's own prompt limit (it left-truncates longer prompts)."""
    return int(model.config.llm.max_length)


def _model_name(model: Any) -> str:
    return str(getattr(model, "name", None) or type(model).__name__)


def _as_xray(image: Any) -> XRay | None:
    if image is None or isinstance(image, XRay):
        return image
    if isinstance(image, np.ndarray):
        if image.ndim != 2:
            raise InvalidInputError(f"expected a 2-D grey image array, got shape {image.shape}")
        return XRay(pixels=image.astype(np.float32), format="array")
    return read_xray(image)


def _unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out
