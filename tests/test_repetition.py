"""Sentence loops stop at the first repeat, in every backend."""

from __future__ import annotations

import torch

from radialog.model.repetition import (
    AnyStop,
    StopOnRepeatedSentence,
    cut_repeated_sentences,
    repeats_a_sentence,
)


def test_cut_at_the_first_repeated_sentence():
    loop = "The heart is normal. The lungs are clear. The heart is normal. The lungs are"
    assert cut_repeated_sentences(loop) == "The heart is normal. The lungs are clear."
    assert repeats_a_sentence(loop)
    same_words = "No effusion. No pneumothorax. no  EFFUSION!"
    assert cut_repeated_sentences(same_words) == "No effusion. No pneumothorax."
    fine = "There is no effusion. There is no pneumothorax."
    assert cut_repeated_sentences(fine) == fine and not repeats_a_sentence(fine)


class _Chars:
    """A tokenizer whose ids are characters (enough for the criterion)."""

    def batch_decode(self, ids, skip_special_tokens=True):
        return ["".join(chr(int(i)) for i in row) for row in ids]


def test_stopping_criterion_stops_only_looping_rows():
    rows = ["A b. C d. A b.", "A b. C d. A e."]
    ids = torch.tensor([[ord(c) for c in r] for r in rows])
    stop = AnyStop(StopOnRepeatedSentence(_Chars()), None)
    assert stop(ids, None).tolist() == [True, False]


def test_model_output_is_cut_and_the_rule_can_be_turned_off(monkeypatch):
    from radialog.model import RadialogModel

    model = RadialogModel.from_config("tiny")
    looping = "The heart is normal. The heart is normal. The heart"
    monkeypatch.setattr(model.codec, "decode", lambda ids: looping)
    assert model._text(torch.tensor([1])) == "The heart is normal."
    model.stop_repeated_sentences = False
    assert model._text(torch.tensor([1])) == looping
