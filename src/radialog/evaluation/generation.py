"""Prediction passes of `radialog eval`: each task's requests, batched, appended to the store.

A request is (key, conversation, image). A task first lists every request, drops those whose key
is already in the store (a resumed run), then generates the rest in batches, appending each
finished batch durably before starting the next one. Greedy decoding throughout, as RaDialog.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from radialog.evaluation.items import EvalItem
from radialog.evaluation.parsing import correction_instruction, correction_sets
from radialog.evaluation.prompts import (
    ALL_FINDINGS_PROMPT,
    IMPRESSION_PROMPT,
    binary_question,
    followup,
    rg_conversation,
    rg_prompt,
    view_conversation,
)
from radialog.evaluation.store import PredictionStore
from radialog.labels import CHEXPERT_LABELS
from radialog.model.prompt import Conversation

log = logging.getLogger(__name__)

# Generation lengths of RaDialog's evaluation scripts (v2 where v1 and v2 differ).
MAX_NEW_TOKENS: dict[str, int] = {
    "rg": 300,
    "correction": 300,
    "binary_qa": 10,
    "all_qa": 30,
    "impression": 300,
    "view": 20,
}
KEEP_OLD = "KEEP_OLD"


@dataclass
class Request:
    key: str
    item: EvalItem
    conversation: Conversation
    extra: dict[str, Any] = field(default_factory=dict)


def batched(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


class ModelRunner:
    """The calls `radialog eval` makes on a `RadialogModel`: one image analysis per item (classifier
    probabilities + LLM image tokens, cached while the item is in use) and batched generation."""

    def __init__(
        self, model: Any, batch_size: int = 8, progress: Callable[[str, int], Any] | None = None
    ) -> None:
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.progress = progress
        # Requests of one item are contiguous, so a small LRU cache computes each analysis once.
        self._analyses: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = self.batch_size + 2

    def analyse(self, item: EvalItem) -> Any:
        """The model's `ImageAnalysis` of the item's image (classifier + image tokens), cached."""
        if item.id in self._analyses:
            self._analyses.move_to_end(item.id)
        else:
            self._analyses[item.id] = self.model.analyse_image(item.image.path)
            while len(self._analyses) > self._cache_size:
                self._analyses.popitem(last=False)
        return self._analyses[item.id]

    def predict_findings(
        self, items: Sequence[EvalItem]
    ) -> list[tuple[list[str], dict[str, float]]]:
        """(positives after thresholds and the No-Finding rule, probabilities) per item."""
        out = []
        for item in items:
            analysis = self.analyse(item)
            out.append((list(analysis.predicted), dict(analysis.findings)))
        return out

    def generate(self, requests: Sequence[Request], max_new_tokens: int) -> list[str]:
        """Greedy answers for a batch of requests (each with its item's image tokens if needed)."""
        convs = [r.conversation for r in requests]
        tokens = [
            self.analyse(r.item).image_tokens[0] if r.conversation.has_image else None
            for r in requests
        ]
        texts = self.model.generate_batch(convs, tokens, max_new_tokens=max_new_tokens)
        return [str(t).strip() for t in texts]


def run_requests(
    runner: ModelRunner,
    store: PredictionStore,
    task: str,
    requests: Sequence[Request],
    max_new_tokens: int,
    make_record: Callable[[Request, str], dict],
) -> int:
    todo = [r for r in requests if r.key not in store]
    if len(todo) < len(requests):
        log.info(
            "%s: %d of %d requests already done (resuming)",
            task,
            len(requests) - len(todo),
            len(requests),
        )
    done = 0
    for batch in batched(todo, runner.batch_size):
        outputs = runner.generate(batch, max_new_tokens)
        store.append(make_record(r, out) for r, out in zip(batch, outputs, strict=True))
        done += len(batch)
        if runner.progress:
            runner.progress(task, len(batch))
    return done


def prediction_record(task: str, req: Request, prompt: str, output: str) -> dict:
    """The fields every stored prediction has (key, task, item id, prompt, output)."""
    return {"key": req.key, "task": task, "id": req.item.id, "prompt": prompt, "output": output}


def run_rg(
    runner: ModelRunner,
    store: PredictionStore,
    items: Sequence[EvalItem],
    use_findings: bool,
    max_new_tokens: int,
) -> None:
    """Report generation: classifier findings -> RaDialog's prompt -> greedy report."""
    todo = [it for it in items if f"rg/{it.id}" not in store]
    if len(todo) < len(items):
        log.info("rg: %d of %d reports already done (resuming)", len(items) - len(todo), len(items))
    for batch in batched(todo, runner.batch_size):
        found = runner.predict_findings(batch)
        requests = []
        for item, (positives, probs) in zip(batch, found, strict=True):
            prompt = rg_prompt(positives if use_findings else None)
            requests.append(
                Request(
                    f"rg/{item.id}",
                    item,
                    rg_conversation(prompt),
                    {"findings": positives, "probabilities": probs},
                )
            )
        outputs = runner.generate(requests, max_new_tokens)
        store.append(
            {
                **prediction_record("rg", r, r.conversation.render(), out),
                "user_turn": r.conversation.messages[0].text,
                "predicted_findings": r.extra["findings"],
                "probabilities": r.extra["probabilities"],
                "reference": r.item.findings,
            }
            for r, out in zip(requests, outputs, strict=True)
        )
        if runner.progress:
            runner.progress("rg", len(batch))


def run_correction(
    runner: ModelRunner,
    store: PredictionStore,
    items: Sequence[EvalItem],
    pred_labels: dict[str, dict],
    ref_labels: dict[str, dict],
    max_new_tokens: int,
) -> None:
    """Correction from the labeler's FP/FN of each generated report; KEEP_OLD when none."""
    requests, keep = [], []
    for item in items:
        rg = store.get(f"rg/{item.id}")
        sets = correction_sets(pred_labels[item.id], ref_labels[item.id])
        instruction = correction_instruction(sets)
        extra = {
            "false_positives": list(sets.false_positives),
            "false_negatives": list(sets.false_negatives),
        }
        req = Request(f"correction/{item.id}", item, Conversation(), extra)
        if instruction is None:
            keep.append((req, rg["output"]))
        else:
            req.conversation = followup(rg["user_turn"], rg["output"], instruction)
            requests.append(req)

    def record(req: Request, out: str) -> dict:
        rec = prediction_record("correction", req, req.conversation.render(), out)
        return {
            **rec,
            **req.extra,
            "original": store.get(f"rg/{req.item.id}")["output"],
            "reference": req.item.findings,
        }

    # KEEP_OLD: no generation; the corrected report is the original one.
    store.append(
        {**record(req, old), "prompt": KEEP_OLD} for req, old in keep if req.key not in store
    )
    run_requests(runner, store, "correction", requests, max_new_tokens, record)


def run_binary_qa(
    runner: ModelRunner, store: PredictionStore, items: Sequence[EvalItem], max_new_tokens: int
) -> None:
    """14 questions per item, each after the generated report."""
    requests = []
    for item in items:
        rg = store.get(f"rg/{item.id}")
        for label in CHEXPERT_LABELS:
            conv = followup(rg["user_turn"], rg["output"], binary_question(label))
            requests.append(Request(f"binary_qa/{item.id}/{label}", item, conv, {"label": label}))
    run_requests(
        runner,
        store,
        "binary_qa",
        requests,
        max_new_tokens,
        lambda r, out: {
            **prediction_record("binary_qa", r, r.conversation.render(), out),
            "label": r.extra["label"],
        },
    )


def run_all_qa(
    runner: ModelRunner, store: PredictionStore, items: Sequence[EvalItem], max_new_tokens: int
) -> None:
    requests = []
    for item in items:
        rg = store.get(f"rg/{item.id}")
        conv = followup(rg["user_turn"], rg["output"], ALL_FINDINGS_PROMPT)
        requests.append(Request(f"all_qa/{item.id}", item, conv))
    run_requests(
        runner,
        store,
        "all_qa",
        requests,
        max_new_tokens,
        lambda r, out: prediction_record("all_qa", r, r.conversation.render(), out),
    )


def run_impression(
    runner: ModelRunner, store: PredictionStore, items: Sequence[EvalItem], max_new_tokens: int
) -> None:
    """Impression from the GT findings given as the assistant turn (items with both sections)."""
    requests = []
    for item in items:
        if not item.impression:
            continue
        rg = store.get(f"rg/{item.id}")
        conv = followup(rg["user_turn"], item.findings, IMPRESSION_PROMPT)
        requests.append(Request(f"impression/{item.id}", item, conv))
    run_requests(
        runner,
        store,
        "impression",
        requests,
        max_new_tokens,
        lambda r, out: {
            **prediction_record("impression", r, r.conversation.render(), out),
            "reference": r.item.impression,
        },
    )


def run_view(
    runner: ModelRunner, store: PredictionStore, items: Sequence[EvalItem], max_new_tokens: int
) -> None:
    """View classification on items whose view is one of AP / PA / LATERAL / LL."""
    requests = [Request(f"view/{it.id}", it, view_conversation()) for it in items if it.view]
    run_requests(
        runner,
        store,
        "view",
        requests,
        max_new_tokens,
        lambda r, out: {
            **prediction_record("view", r, r.conversation.render(), out),
            "reference": r.item.view,
        },
    )
