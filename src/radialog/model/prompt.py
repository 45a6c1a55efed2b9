"""The one source of RaDialog's conversation format and prompt texts.

Format (Vicuna v1.1 "TWO" style with the radiologist system prompt)::

    {system} USER: {m1} ASSISTANT: {m2}</s>USER: {m3} ASSISTANT:

Every user turn is followed by " ", every assistant turn by "</s>", and an open turn ends with
"ASSISTANT:" (no trailing space).

How "</s>" maps to real tokens: "</s>" is a *format marker* here, not text. RaDialog's Llama
tokenizer maps it to EOS (id 2). radialog's token codec (`radialog.model.llm.TokenCodec`) does
the same for every tokenizer: each literal "</s>" in a rendered prompt is encoded as the
tokenizer's EOS id (for SmolLM2 that is `<|im_end|>`), training targets end with that EOS id,
and generation stops at it. If a model writes the literal characters "</s>" anyway, the decoded
text is cut there.

Training strings follow RaDialog v1: the target turn is appended directly after "ASSISTANT:"
(no space) and followed by EOS; the loss is on that target and EOS only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from radialog.labels import NO_FINDING, canonical_label, clean_no_finding, join_human

SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant acting as an "
    "experienced radiologist. The assistant gives professional, detailed, and polite answers "
    "to the user's questions."
)
USER = "USER"
ASSISTANT = "ASSISTANT"
SEP = " "
SEP2 = "</s>"
IMAGE_PLACEHOLDER = "<image>"
NO_COMMON_FINDINGS = "no common findings"

REPORT_PROMPT_TEMPLATE = (
    IMAGE_PLACEHOLDER + ". Predicted Findings: {findings}. You are to act as a radiologist and "
    "write the finding section of a chest x-ray radiology report for this X-ray image and the "
    "given predicted findings. Write in the style of a radiologist, write one fluent text without "
    "enumeration, be concise and don't provide explanations or reasons."
)
ALL_FINDINGS_PROMPT = "List all the findings in this report."
IMPRESSION_PROMPT = "Write the impression section corresponding to this radiology report."
VIEW_PROMPT = IMAGE_PLACEHOLDER + " From what view was this image taken?"


@dataclass
class Message:
    role: str  # USER or ASSISTANT
    text: str


@dataclass
class Conversation:
    """A dialog in RaDialog's format. Build it with `add_user` / `add_assistant`."""

    messages: list[Message] = field(default_factory=list)
    system: str = SYSTEM_PROMPT

    def add_user(self, text: str) -> Conversation:
        self._check_next(USER)
        self.messages.append(Message(USER, text))
        return self

    def add_assistant(self, text: str) -> Conversation:
        self._check_next(ASSISTANT)
        self.messages.append(Message(ASSISTANT, text))
        return self

    def _check_next(self, role: str) -> None:
        expected = USER if not self.messages or self.messages[-1].role == ASSISTANT else ASSISTANT
        if role != expected:
            raise ValueError(f"turns must alternate USER/ASSISTANT; expected a {expected} turn")

    def copy(self) -> Conversation:
        return Conversation([Message(m.role, m.text) for m in self.messages], self.system)

    @property
    def has_image(self) -> bool:
        return any(IMAGE_PLACEHOLDER in m.text for m in self.messages if m.role == USER)

    def render(self) -> str:
        """The prompt text. If the last turn is the user's, it ends with an open "ASSISTANT:"."""
        out = self.system + SEP
        for m in self.messages:
            out += f"{m.role}: {m.text}" + (SEP if m.role == USER else SEP2)
        if not self.messages or self.messages[-1].role == USER:
            out += f"{ASSISTANT}:"
        return out

    def training_pair(self) -> tuple[str, str]:
        """(prompt, target) for training on the last assistant turn.

        The full training text is `prompt + target + "</s>"`: no space after the final
        "ASSISTANT:", EOS after the target; earlier turns keep their usual spacing.
        """
        if not self.messages or self.messages[-1].role != ASSISTANT:
            raise ValueError("training_pair needs a conversation that ends with an assistant turn")
        prompt = Conversation(self.messages[:-1], self.system).render()
        return prompt, self.messages[-1].text

    def training_text(self) -> str:
        prompt, target = self.training_pair()
        return prompt + target + SEP2


def findings_text(positives: Iterable[str], clean: bool = True) -> str:
    """The findings list for the report prompt: canonical order, lower-case, ", "-joined.

    `clean` applies the test-time No-Finding rule (drop it when anything but Support Devices is
    present). Empty -> "no common findings".
    """
    labels = clean_no_finding(positives) if clean else _canonical(positives)
    if not labels:
        return NO_COMMON_FINDINGS
    return ", ".join(labels).lower().strip()


def _canonical(labels: Iterable[str]) -> list[str]:
    from radialog.labels import CHEXPERT_LABELS

    present = {canonical_label(x) for x in labels}
    return [name for name in CHEXPERT_LABELS if name in present]


def report_prompt(findings: str | Iterable[str]) -> str:
    """RaDialog v2's report-generation user turn (with the `<image>` placeholder).

    `findings` is either the findings string (see `findings_text`) or an iterable of positive
    label names.
    """
    text = findings if isinstance(findings, str) else findings_text(findings)
    return REPORT_PROMPT_TEMPLATE.format(findings=text)


def text_only(prompt: str) -> str:
    """A user turn without the `<image>` placeholder (and the ". " that follows it): what a
    chat about a pasted report sends, and what text-only training samples use."""
    out = prompt.replace(IMAGE_PLACEHOLDER + ". ", "").replace(IMAGE_PLACEHOLDER, "")
    return " ".join(out.split())


def report_conversation(findings: str | Iterable[str]) -> Conversation:
    return Conversation().add_user(report_prompt(findings))


def correction_prompt(false_positives: Sequence[str], false_negatives: Sequence[str]) -> str | None:
    """RaDialog's correction instruction, or None when there is nothing to correct (KEEP_OLD).

    `false_positives`: labels the report wrongly contains (to remove); `false_negatives`: labels
    it misses (to include). No Finding is ignored in both.
    """
    fp = [x for x in _canonical(false_positives) if x != NO_FINDING]
    fn = [x for x in _canonical(false_negatives) if x != NO_FINDING]
    fp_text = join_human(fp).lower()
    fn_text = join_human(fn).lower()
    if fp and fn:
        return (
            "Please adapt the report with the following corrections: "
            f"Include {fn_text} and remove {fp_text}. Don't make other changes."
        )
    if fp:
        return f"The patient does not have {fp_text}. Update the report. Don't make other changes."
    if fn:
        return f"The patient also has {fn_text}, correct the report. Don't make other changes."
    return None


def binary_question(label: str) -> str:
    """RaDialog's binary findings question (leading space and canonical capitalisation kept)."""
    return f" Is there any {canonical_label(label)}?"
