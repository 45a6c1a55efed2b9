"""GenerationOptions: the one set of decoding settings, merged with keyword settings."""

from __future__ import annotations

import pytest

from radialog.errors import InvalidInputError
from radialog.model.generation import GenerationOptions


def test_keywords_override_the_options_and_unknown_ones_are_refused() -> None:
    base = GenerationOptions(max_new_tokens=40, do_sample=True, temperature=0.7)
    merged = GenerationOptions.merged(base, {"max_new_tokens": 8})
    assert (merged.max_new_tokens, merged.do_sample, merged.temperature) == (8, True, 0.7)
    assert base.max_new_tokens == 40  # the caller's options are not changed
    assert GenerationOptions.merged(None, {}) == GenerationOptions()
    with pytest.raises(TypeError, match="max_tokens"):
        GenerationOptions.merged(base, {"max_tokens": 8})


def test_penalties_out_of_range_are_refused_also_when_merged() -> None:
    with pytest.raises(InvalidInputError, match="frequency_penalty"):
        GenerationOptions.merged(None, {"frequency_penalty": 3.0})


def test_kwargs_carry_only_what_is_set() -> None:
    assert GenerationOptions().kwargs() == {"do_sample": False}
    sampled = GenerationOptions(max_new_tokens=5, do_sample=True, top_p=0.8, presence_penalty=1)
    assert sampled.kwargs() == {
        "do_sample": True,
        "max_new_tokens": 5,
        "temperature": 1.0,
        "top_p": 0.8,
        "frequency_penalty": 0.0,
        "presence_penalty": 1,
    }
