"""Sentence loops: a small LLM sometimes writes the same sentence again and again until the
token limit ("The heart is normal. The lungs are clear. The heart is normal. ..."). Generation
stops as soon as a finished sentence repeats an earlier one, and the repeat is cut off.

One normalisation decides what "the same sentence" is (lower-case words, punctuation and
spacing ignored); `radialog.evaluation.faithfulness` counts loops with it too.
"""

from __future__ import annotations

import re
from typing import Any

import torch

_WORD = re.compile(r"[a-z]+")
# A sentence ends at . ! or ? followed by space or the end of the text.
_SENTENCE = re.compile(r"[^.!?]*[.!?](?=\s|$)")


def sentence_key(sentence: str) -> str:
    return " ".join(_WORD.findall(sentence.lower()))


def finished_sentences(text: str) -> list[tuple[str, int]]:
    """(normalised sentence, end offset) of each finished sentence, in order."""
    return [(sentence_key(m.group()), m.end()) for m in _SENTENCE.finditer(text)]


def repeats_a_sentence(text: str) -> bool:
    keys = [k for k, _ in finished_sentences(text) if k]
    return len(keys) != len(set(keys))


def cut_repeated_sentences(text: str) -> str:
    """The text up to (not including) the first sentence that repeats an earlier one."""
    seen: set[str] = set()
    start = 0
    for key, end in finished_sentences(text):
        if key and key in seen:
            return text[:start].rstrip()
        if key:
            seen.add(key)
        start = end
    return text


class StopOnRepeatedSentence:
    """Stopping criterion: a row stops once its newest finished sentence repeats an earlier one
    (transformers' StoppingCriteria call signature; also used by radialog's own decode loop)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        return torch.tensor([self._looping(t) for t in texts], device=input_ids.device)

    @staticmethod
    def _looping(text: str) -> bool:
        keys = [k for k, _ in finished_sentences(text) if k]
        return len(keys) > 1 and keys[-1] in keys[:-1]


class AnyStop:
    """Stop a row when any of the criteria says so."""

    def __init__(self, *criteria: Any) -> None:
        self.criteria = [c for c in criteria if c is not None]

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        out = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for criterion in self.criteria:
            out |= criterion(input_ids, scores).to(out.device).bool()
        return out
