"""A dialog about one chest X-ray: its report, follow-up tasks and history.

The conversation is kept as turns and rendered with `radialog.model.prompt.Conversation`
(the one definition of RaDialog's format). The first exchange is always RaDialog's
report-generation turn (image tokens + predicted findings) and the report; follow-ups are
appended as `USER: {instruction} ASSISTANT:` exactly as RaDialog's downstream tasks do.

When the history outgrows the token budget, the oldest follow-up exchanges are dropped
(the system prompt, the image/report exchange and the newest turns are kept); the count
is recorded in `dropped_turns` and a notice in `notices`. A message that does not fit even
then is refused (`PromptTooLongError`, naming the limit): the model never sees a cut prompt.

The report is replaced only by a correction whose answer is a report (`looks_like_report`):
an empty or yes/no answer stays a reply in the dialog and the report is kept. The generated
report is checked against the findings list (`radialog.consistency`) and, unless `repair`
is off, repaired once when they disagree, as `RadialogModel.generate_report` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radialog.chat.commands import CommandError, parse_command, resolve_label
from radialog.chat.correction import CorrectionResult, check_correction, looks_like_report
from radialog.chat.prompts import (
    FOLLOW_UP_PROMPTS,
    correction_prompt,
    translate_prompt,
)
from radialog.errors import InvalidInputError
from radialog.imaging.io import XRay, read_xray
from radialog.labels import CHEXPERT_LABELS
from radialog.model.generation import GenerationOptions
from radialog.model.prompt import Conversation, findings_text, report_prompt
from radialog.model.report import Report, with_total

log = logging.getLogger(__name__)


class PromptTooLongError(InvalidInputError):
    """A message (with the report it is about) does not fit the model's context."""


USER, ASSISTANT = "user", "assistant"
# Turn kinds whose answers may be the report: the report turn's always, a correction's only
# when it is one (`Turn.is_report`).
REPORT_KINDS = ("report", "correct")
REPORT_REQUEST = "Write a report for this X-ray."


@dataclass
class Turn:
    """One message. `prompt` is what the model sees for user turns (the instruction),
    `text` what people see (e.g. "/easy" or the question)."""

    role: str
    text: str
    kind: str = "ask"
    prompt: str | None = None
    # Assistant turns: this text is (or was) the report. False for a correction's answer
    # that is not a report ("yes", empty): a reply, never the report.
    is_report: bool = False

    @property
    def model_text(self) -> str:
        return self.prompt if self.prompt is not None else self.text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "kind": self.kind, "text": self.text}
        if self.prompt is not None and self.prompt != self.text:
            out["prompt"] = self.prompt
        if self.role == ASSISTANT and self.kind in REPORT_KINDS:
            out["is_report"] = self.is_report
        return out


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
        *,
        repair: bool = True,
        should_stop: Callable[[], bool] | None = None,
        gate: Any = None,
    ) -> None:
        self.model = model
        self.xray = _as_xray(image)
        # The input gate's verdict on the image (radialog.gate.GateResult), when the caller
        # screened it; it goes into the report JSON as "gate".
        self.gate = gate
        self.options = options or GenerationOptions()
        self.max_context_tokens = max_context_tokens
        self.repair = repair
        # Checked before and during every generation (per token): True aborts it with
        # GenerationCancelled, also where no streamer was given (a hidden report, a repair).
        self.should_stop = should_stop
        self.consistency: Any = None  # radialog.consistency.Consistency of the report
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
        """The latest report text (the generated one, or the latest correction that produced
        a report)."""
        for turn in reversed(self.turns):
            if turn.role == ASSISTANT and turn.is_report:
                return turn.text
        return None

    @property
    def original_report(self) -> str | None:
        """The report the dialog started from (before any correction)."""
        if len(self.turns) > 1 and self.turns[0].kind == "report":
            return self.turns[1].text
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
            timings = dict(analysis.timings)
            timings["generate"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            text = self._check_report(text)
            if self.consistency is not None:
                timings["check"] = time.perf_counter() - t2
        except BaseException:
            self.turns.pop(0)
            raise
        self.turns.insert(1, Turn(ASSISTANT, text, "report", is_report=True))
        self.report_data = Report(
            findings=dict(self.findings),
            predicted=list(self.predicted),
            text=text,
            model=_model_name(self.model),
            timings=with_total(timings),
            consistency=self.consistency,
            thresholds=model_thresholds(self.model),
            gate=self.gate.to_dict() if self.gate is not None else None,
        ).to_dict()
        return text

    def _check_report(self, draft: str) -> str:
        """The labeler's check of a new report against the findings list (`consistency`)
        and, when `repair` is on and they disagree, the model's one repair turn
        (`RadialogModel.repair_report`: kept only if more consistent). -> the report."""
        from radialog.consistency import check_report

        labeler = getattr(self.model, "labeler", None)
        if labeler is None:  # a model without a labeler (not a RadialogModel)
            return draft
        check = check_report(draft, self.predicted, labeler)
        repair = getattr(self.model, "repair_report", None)
        if self.repair and not check.consistent and repair is not None:
            gen = self.options.kwargs()
            cancel = self._cancel_streamer()
            if cancel is not None:
                gen["streamer"] = cancel
            asked = self.conversation(self.turns[:1]).add_assistant(draft)
            draft, _conv, check = repair(
                asked, self.predicted, self.analyse().image_tokens, check, **gen
            )
        self.consistency = check
        return draft

    def report_prompt(self) -> str:
        return report_prompt(findings_text(self.predicted))

    def add_report_turn(self, report_text: str) -> None:
        """Start the dialog from a known report (e.g. one a client sends back)."""
        self.analyse()
        self.turns = [
            Turn(USER, REPORT_REQUEST, "report", self.report_prompt()),
            Turn(ASSISTANT, report_text, "report", is_report=True),
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
            answer = result.report if result.answer is None else result.answer
            return Reply(answer, "correct", result)
        if cmd.name in FOLLOW_UP_PROMPTS:
            return Reply(self._fixed_follow_up(cmd.name, streamer), cmd.name)
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
        if cmd.name in FOLLOW_UP_PROMPTS:
            return Turn(USER, text.strip(), cmd.name, FOLLOW_UP_PROMPTS[cmd.name])
        if cmd.name == "translate":
            return Turn(USER, text.strip(), "translate", translate_prompt(cmd.argument))
        raise CommandError(f"/{cmd.name} is a terminal command; it cannot be sent as a message")

    def add_exchange(self, user_text: str, answer: str) -> None:
        """Append an earlier exchange without generating (history sent back by a client)."""
        turn = self.user_turn(user_text)
        # A correction's answer counts as the report only if it is one (see `correct`).
        is_report = turn.kind == "correct" and looks_like_report(answer)
        self.turns += [turn, Turn(ASSISTANT, answer, turn.kind, is_report=is_report)]

    def ask(self, question: str, streamer: Any = None) -> str:
        """A free question about the image and report."""
        question = question.strip()
        if not question:
            raise InvalidInputError("the question is empty")
        answer = self._follow_up(Turn(USER, question, "ask"), streamer)
        report = self.current_report
        if answer and report and _repeats(answer, report):
            self._notice(
                "the model repeated the report instead of answering; the report is unchanged "
                "(ask a yes/no question, e.g. 'Is there cardiomegaly?', or rephrase)"
            )
        return answer

    def easy_language(self, streamer: Any = None) -> str:
        return self._fixed_follow_up("easy", streamer)

    def summarize(self, streamer: Any = None) -> str:
        return self._fixed_follow_up("summary", streamer)

    def impression(self, streamer: Any = None) -> str:
        return self._fixed_follow_up("impression", streamer)

    def _fixed_follow_up(self, name: str, streamer: Any) -> str:
        """/easy, /summary, /impression: one fixed instruction about the report."""
        return self._follow_up(Turn(USER, f"/{name}", name, FOLLOW_UP_PROMPTS[name]), streamer)

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
        if looks_like_report(new):
            result = check_correction(previous, new, prompt, add_l, remove_l, label_report)
        else:  # "yes", empty, ...: a reply; the report stays
            result = CorrectionResult(
                previous,
                previous,
                prompt,
                added={label: False for label in add_l},
                removed={label: False for label in remove_l},
                answer=new,
            )
        self.turns[-1].is_report = result.replaced
        return result

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
        if not answer:
            self._notice(
                "the model gave an empty answer; rephrase the message (the report is above: "
                "/summary, /impression or /easy rewrite it)"
            )
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
        follow-up exchanges (user + answer) are dropped first, with a notice. If even that
        does not fit, PromptTooLongError says the limit (nothing is generated).
        """
        budget = self.prompt_budget()
        turns = list(self.turns)
        head = 2 if len(turns) > 2 and turns[0].kind == "report" else 0
        # Bounded cost: each turn is tokenized once (its count is a lower bound of its share
        # of the prompt) and a text far longer than the context not at all; exchanges are
        # dropped on these counts, then the rendered prompt is counted exactly.
        cap = 32 * self.context_limit()
        sizes = [
            budget + 1 if len(t.model_text) > cap else self._count(t.model_text, prefix=False)
            for t in turns
        ]
        dropped = 0

        def over() -> bool:
            if sum(sizes) > budget:
                return True
            return self._count(self.conversation(turns).render()) > budget

        while len(turns) - head > 1 and over():
            del turns[head : head + 2]
            del sizes[head : head + 2]
            dropped += 2
        self.dropped_turns = dropped
        if dropped:
            self._notice(f"{dropped} older turns were left out to fit the model's context")
        if sum(sizes) > budget or self._count(self.conversation(turns).render()) > budget:
            last = turns[-1].model_text if turns else ""
            alone = (
                f"{len(last):,} characters"
                if len(last) > cap
                else f"{self._count(last, prefix=False):,} tokens"
            )
            raise PromptTooLongError(
                f"the message does not fit the model's context: the message alone is {alone} "
                f"where the prompt may use at most {budget} tokens, since the model reads "
                f"{self.context_limit()} tokens and {self.answer_tokens()} are kept for the "
                "answer (the report and the system prompt take part of the rest); shorten it"
            )
        return turns

    def _notice(self, text: str) -> None:
        log.info(text)
        self.notices.append(text)

    def _cancel_streamer(self) -> Any:
        """A streamer that only checks `should_stop` (None without one)."""
        if self.should_stop is None:
            return None
        from radialog.chat.streaming import TextDeltaStreamer

        return TextDeltaStreamer(self.model.codec, lambda _t: None, self.should_stop)

    def _generate(self, streamer: Any) -> str:
        from radialog.chat.streaming import GenerationCancelled

        if self.should_stop is not None and self.should_stop():
            raise GenerationCancelled("generation cancelled")
        conv = self.conversation(self.fitted_turns())
        gen = self.options.kwargs()
        if streamer is None:
            streamer = self._cancel_streamer()
        elif self.should_stop is not None and getattr(streamer, "should_stop", 0) is None:
            streamer.should_stop = self.should_stop
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

    def context_limit(self) -> int:
        """Tokens the model reads (prompt + answer): max_context_tokens when set, never more
        than the model's own limit (`config.llm.max_length`)."""
        limit = _model_prompt_limit(self.model)
        if self.max_context_tokens is not None:
            limit = min(limit, self.max_context_tokens)
        return limit

    def answer_tokens(self) -> int:
        return int(self.options.max_new_tokens or self.model.config.max_new_tokens)

    def prompt_budget(self) -> int:
        """Tokens the prompt may use: the context limit minus room for the answer."""
        return max(1, self.context_limit() - self.answer_tokens())

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


def _repeats(answer: str, report: str) -> bool:
    """The answer is the report again (or most of it): a question answered with the report."""
    a, r = " ".join(answer.lower().split()), " ".join(report.lower().split())
    return len(r) > 40 and (r in a or (len(a) >= 0.8 * len(r) and a[: len(r) // 2] in r))


def count_tokens(model: Any, text: str, prefix: bool = True) -> int:
    """Tokens the model sees for a rendered prompt, image embeddings included."""
    segments = model.codec.encode_segments(text, add_prefix=prefix)
    return sum(len(s) for s in segments) + (len(segments) - 1) * int(model.num_image_tokens)


def _model_prompt_limit(model: Any) -> int:
    """The model's own prompt limit (it left-truncates longer prompts)."""
    return int(model.config.llm.max_length)


def model_thresholds(model: Any) -> dict[str, float]:
    """Per-label thresholds of the findings classifier (a finding above its threshold is
    given to the report prompt)."""
    values = getattr(model, "thresholds", None)
    if values is None:
        return {}
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    return {k: round(float(v), 4) for k, v in zip(CHEXPERT_LABELS, values, strict=False)}


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
