"""Decoding for RadialogModel: one options object and the calls into each backend.

`GenerationOptions` is the one set of decoding settings: the CLI, the server, the chat session
and `RadialogModel.generate` all take it. `RadialogModel.generate_batch` builds the prompt
embeddings and chooses the backend (that depends on how its LLM was loaded); this module turns
the options into a call of the chosen decoder: radialog's own loop (`decoding.FastDecoder` or
`llamacpp.LlamaCppDecoder`, both `StepDecoder`s) or transformers' `generate()`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from radialog.errors import InvalidInputError


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

    @classmethod
    def merged(
        cls, options: GenerationOptions | None, settings: dict[str, Any]
    ) -> GenerationOptions:
        """`options` with the keyword `settings` on top (either may be empty)."""
        unknown = set(settings) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown generation settings: {', '.join(sorted(unknown))}")
        base = options or cls()
        return replace(base, **settings) if settings else base

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


@dataclass(frozen=True)
class DecodeCall:
    """What the model fixes for one call, whatever the options: the length cap, the special
    ids, when to stop besides EOS, and where tokens stream to."""

    max_new_tokens: int
    eos_token_id: int
    pad_token_id: int
    stopping: Any = None
    streamer: Any = None


def stopping_criteria(tokenizer: Any, codec: Any, stop_repeated_sentences: bool) -> Any:
    """When a row is done besides EOS: RaDialog's separator spelled out in text (models whose EOS
    is not "</s>"), and a sentence that repeats an earlier one. None when neither applies."""
    from radialog.model.llm import StopOnText
    from radialog.model.repetition import AnyStop, StopOnRepeatedSentence

    stops: list[Any] = []
    if tokenizer.convert_ids_to_tokens(codec.eos_token_id) != "</s>":
        stops.append(StopOnText(tokenizer))
    if stop_repeated_sentences:
        stops.append(StopOnRepeatedSentence(tokenizer))
    return AnyStop(*stops) if stops else None


def decode_with(
    decoder: Any,
    inputs: dict[str, Any],
    options: GenerationOptions,
    call: DecodeCall,
) -> Any:
    """New token ids from one of radialog's decoders (`StepDecoder.decode`)."""
    return decoder.decode(
        inputs["inputs_embeds"],
        inputs["attention_mask"],
        max_new_tokens=call.max_new_tokens,
        eos_token_id=call.eos_token_id,
        pad_token_id=call.pad_token_id,
        do_sample=options.do_sample,
        temperature=options.temperature,
        top_p=options.top_p,
        stopping=call.stopping,
        streamer=call.streamer,
        frequency_penalty=options.frequency_penalty,
        presence_penalty=options.presence_penalty,
    )


def hf_generate(
    llm: Any,
    inputs: dict[str, Any],
    options: GenerationOptions,
    call: DecodeCall,
) -> Any:
    """New token ids from transformers' `generate()` (the "hf" backend) with the same settings."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": call.max_new_tokens,
        "do_sample": options.do_sample,
        "eos_token_id": call.eos_token_id,
        "pad_token_id": call.pad_token_id,
        "streamer": call.streamer,
    }
    if options.do_sample:
        kwargs.update(temperature=options.temperature, top_p=options.top_p)
    else:  # silence generation-config warnings about unused sampling params
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if call.stopping is not None:
        from transformers import StoppingCriteriaList

        kwargs["stopping_criteria"] = StoppingCriteriaList([call.stopping])
    if options.frequency_penalty or options.presence_penalty:
        from transformers import LogitsProcessorList

        from radialog.model.decoding import PenaltyProcessor

        kwargs["logits_processor"] = LogitsProcessorList(
            [PenaltyProcessor(options.frequency_penalty, options.presence_penalty)]
        )
    return llm.generate(**inputs, **kwargs)
