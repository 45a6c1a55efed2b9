"""Follow-up tasks on real report text, no image needed: `text_correction` and `text_impression`.

Both continue RaDialog's conversation with the *real* report as the assistant turn, so they
measure the dialog skills the instruct stage teaches on any dataset with report text (IU X-ray
has no images here):

- text_correction: RG prompt (findings list = the labeler's positives of the real findings) ->
  the real findings -> RaDialog's correction request (`correction_prompt`) to add one absent
  finding or remove one present finding. The choice is deterministic per (seed, study id):
  remove when the report has a removable positive and a coin flip says so, else add. Requests
  only name labels the labeler detects from their own name ("There is {label}." is read as
  positive), so success is measurable; that leaves out No Finding, Pleural Other and Support
  Devices with the rule labeler. Scored with the chat's correction check
  (`radialog.chat.correction.check_correction`): *took effect* (an added label is positive, a
  removed one neither positive nor uncertain), *nothing else changed* (no other label moved
  between positive / uncertain / absent; No Finding excluded) and *success* (both).
- text_impression: the same two turns, then `IMPRESSION_PROMPT`; BLEU / METEOR / ROUGE-L against
  the real impression section (studies with both sections).

The `<image>` placeholder: there is no image, so the RG turn is sent without it (`text_only`)
and the model generates from text alone (`image_tokens=None`, which `RadialogModel.generate`
supports). We do not feed a blank image: image tokens of an empty picture are an input the
model never saw in training, while a text-only prompt is what a chat about a pasted report sends.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radialog.data.study import Study, StudyImage, stable_seed
from radialog.evaluation.generation import ModelRunner, Request, prediction_record, run_requests
from radialog.evaluation.items import EvalItem
from radialog.evaluation.parsing import normalize_view
from radialog.evaluation.store import PredictionStore
from radialog.labels import CHEXPERT_LABELS, NO_FINDING
from radialog.model.prompt import (
    IMPRESSION_PROMPT,
    Conversation,
    correction_prompt,
    report_prompt,
    text_only,
)

log = logging.getLogger(__name__)

TEXT_TASKS: tuple[str, ...] = ("text_correction", "text_impression")
MAX_NEW_TOKENS: dict[str, int] = {"text_correction": 300, "text_impression": 300}
ADD, REMOVE = "add", "remove"
# Probe sentence for "can the labeler see this label from its name?" (the request's wording).
_PROBE = "There is {name}."


def text_rg_prompt(positives: Iterable[str]) -> str:
    """RaDialog's report prompt with this findings list, image placeholder removed."""
    return text_only(report_prompt(list(positives)))


def positives(labels: Mapping[str, int | None]) -> list[str]:
    """Positive labels (value 1) in canonical order."""
    return [n for n in CHEXPERT_LABELS if labels.get(n) == 1]


def detectable_labels(labeler: Any) -> tuple[str, ...]:
    """Labels (No Finding excluded) that `labeler` reads as positive from "There is {name}."."""
    names = [n for n in CHEXPERT_LABELS if n != NO_FINDING]
    results = labeler.label([_PROBE.format(name=n.lower()) for n in names])
    return tuple(n for n, r in zip(names, results, strict=True) if r.labels.get(n) == 1)


@dataclass(frozen=True)
class CorrectionRequest:
    """One requested change of a real report: add an absent finding or remove a present one."""

    mode: str  # ADD or REMOVE
    label: str
    prompt: str

    @property
    def add(self) -> list[str]:
        return [self.label] if self.mode == ADD else []

    @property
    def remove(self) -> list[str]:
        return [self.label] if self.mode == REMOVE else []


def choose_correction(
    study_id: str, labels: Mapping[str, int | None], detectable: Sequence[str], seed: int
) -> CorrectionRequest | None:
    """The correction request for one report, deterministic in (seed, study id).

    Remove: a positive detectable label. Add: a detectable label that is absent (0 or not
    mentioned; uncertain ones are skipped, adding them is ambiguous). Remove is chosen with
    probability 1/2 when possible. None when no detectable label qualifies.
    """
    rng = random.Random(stable_seed("text_correction", seed, study_id))
    removable = [n for n in detectable if labels.get(n) == 1]
    addable = [n for n in detectable if labels.get(n) in (0, None)]
    if removable and (not addable or rng.random() < 0.5):
        label = rng.choice(removable)
        return CorrectionRequest(REMOVE, label, correction_prompt([label], []) or "")
    if addable:
        label = rng.choice(addable)
        return CorrectionRequest(ADD, label, correction_prompt([], [label]) or "")
    return None


def text_followup(findings_prompt: str, report: str, question: str) -> Conversation:
    """Text-only RG turn -> the real report -> the follow-up question."""
    return Conversation().add_user(findings_prompt).add_assistant(report).add_user(question)


def build_text_items(studies: Iterable[Study]) -> list[EvalItem]:
    """One item per study with a findings section; images are not needed (path may be None)."""
    items = []
    for study in studies:
        findings = " ".join((study.findings or "").split())
        if not findings:
            continue
        image = study.frontal_image() or (study.images[0] if study.images else StudyImage(None))
        items.append(
            EvalItem(
                id=study.id,
                study_id=study.id,
                image=image,
                findings=findings,
                impression=" ".join((study.impression or "").split()),
                view=normalize_view(image.view),
                labels=dict(study.labels) if study.labels else None,
            )
        )
    return items


def run_text_correction(
    runner: ModelRunner,
    store: PredictionStore,
    items: Sequence[EvalItem],
    labeler: Any,
    seed: int,
    max_new_tokens: int,
) -> None:
    """Generate the corrected reports (items without a possible request are skipped, logged)."""
    detectable = detectable_labels(labeler)
    ref = labeler.label([it.findings for it in items])
    requests, skipped = [], 0
    for item, result in zip(items, ref, strict=True):
        choice = choose_correction(item.id, result.labels, detectable, seed)
        if choice is None:
            skipped += 1
            continue
        first = text_rg_prompt(positives(result.labels))
        conv = text_followup(first, item.findings, choice.prompt)
        extra = {"mode": choice.mode, "label": choice.label, "request": choice.prompt}
        requests.append(Request(f"text_correction/{item.id}", item, conv, extra))
    if skipped:
        log.info("text_correction: %d reports allow no detectable add/remove request", skipped)
    run_requests(
        runner,
        store,
        "text_correction",
        requests,
        max_new_tokens,
        lambda r, out: {
            **prediction_record("text_correction", r, r.conversation.render(), out),
            **r.extra,
            "original": r.item.findings,
        },
    )


def run_text_impression(
    runner: ModelRunner,
    store: PredictionStore,
    items: Sequence[EvalItem],
    labeler: Any,
    max_new_tokens: int,
) -> None:
    """Impressions from the real findings (items with both sections)."""
    both = [it for it in items if it.impression]
    ref = labeler.label([it.findings for it in both])
    requests = [
        Request(
            f"text_impression/{it.id}",
            it,
            text_followup(text_rg_prompt(positives(r.labels)), it.findings, IMPRESSION_PROMPT),
        )
        for it, r in zip(both, ref, strict=True)
    ]
    run_requests(
        runner,
        store,
        "text_impression",
        requests,
        max_new_tokens,
        lambda r, out: {
            **prediction_record("text_impression", r, r.conversation.render(), out),
            "reference": r.item.impression,
        },
    )


@dataclass(frozen=True)
class CorrectionOutcome:
    """The labeler's verdict on one corrected report."""

    took_effect: bool
    unchanged: bool  # nothing but the requested label changed state
    other_changes: dict[str, tuple[str, str]]

    @property
    def success(self) -> bool:
        return self.took_effect and self.unchanged


def correction_outcome(request: CorrectionRequest, before: Any, after: Any) -> CorrectionOutcome:
    """Judge a correction from the labeler's results (`LabelResult`) before and after."""
    from radialog.chat.correction import check_correction

    texts = {"before": before, "after": after}
    check = check_correction(
        "before", "after", request.prompt, request.add, request.remove, texts.__getitem__
    )
    return CorrectionOutcome(check.applied, not check.other_changes, dict(check.other_changes))


def _ci_entries(name_values: Mapping[str, np.ndarray], conv: Mapping[str, str], options: Any):
    from radialog.metrics.bootstrap import mean_statistic, reported_metrics

    stats = [mean_statistic(k, v, conv[k]) for k, v in name_values.items()]
    n = len(next(iter(name_values.values())))
    return reported_metrics(stats, n, options.n_bootstrap, options.seed)


_CORRECTION_CONVENTIONS = {
    "success_rate": "share of requests that took effect with nothing else changed",
    "took_effect": "share of requests that took effect per the labeler (added label positive; "
    "removed label neither positive nor uncertain)",
    "unchanged": "share of outputs where no other label changed between positive, uncertain "
    "and absent (No Finding excluded)",
    "rouge_l_vs_original": "mean ROUGE-L of the output against the report it corrects "
    "(how much text was kept)",
}


def _records(store: PredictionStore, task: str, items: Sequence[EvalItem]) -> list[dict]:
    keys = [f"{task}/{it.id}" for it in items]
    return [store.get(k) for k in keys if k in store]


def score_text_correction(
    store: PredictionStore, items: Sequence[EvalItem], labeler: Any, options: Any
) -> dict[str, Any]:
    """Success / took-effect / unchanged rates with bootstrap CIs, overall and per mode."""
    from radialog.metrics.nlg import rouge_l, tokenize_all

    recs = _records(store, "text_correction", items)
    if not recs:
        return {"n": 0, "metrics": {}, "by_mode": {}}
    before = labeler.label([r["original"] for r in recs])
    after = labeler.label([r["output"] for r in recs])
    outcomes = []
    for rec, b, a in zip(recs, before, after, strict=True):
        req = CorrectionRequest(rec["mode"], rec["label"], rec["request"])
        outcomes.append(correction_outcome(req, b, a))
    toks_out, toks_orig = (
        tokenize_all([r["output"] for r in recs]),
        tokenize_all([r["original"] for r in recs]),
    )
    rl = np.array([rouge_l(p, o) for p, o in zip(toks_out, toks_orig, strict=True)])

    def block(mask: np.ndarray) -> dict[str, Any]:
        values = {
            "success_rate": np.array([o.success for o in outcomes], dtype=float)[mask],
            "took_effect": np.array([o.took_effect for o in outcomes], dtype=float)[mask],
            "unchanged": np.array([o.unchanged for o in outcomes], dtype=float)[mask],
            "rouge_l_vs_original": rl[mask],
        }
        return _ci_entries(values, _CORRECTION_CONVENTIONS, options)

    modes = np.array([r["mode"] for r in recs])
    by_mode = {
        m: {"n": int((modes == m).sum()), "metrics": block(modes == m)}
        for m in (ADD, REMOVE)
        if (modes == m).any()
    }
    changed: dict[str, int] = {}
    for o in outcomes:
        for label in o.other_changes:
            changed[label] = changed.get(label, 0) + 1
    return {
        "n": len(recs),
        "metrics": block(np.ones(len(recs), dtype=bool)),
        "by_mode": by_mode,
        "other_changes_by_label": dict(sorted(changed.items(), key=lambda kv: -kv[1])),
    }


def score_text_impression(
    store: PredictionStore, items: Sequence[EvalItem], options: Any
) -> dict[str, Any]:
    """BLEU / METEOR / ROUGE-L of the impressions against the real impression section."""
    from radialog.evaluation.scoring import score_texts

    recs = _records(store, "text_impression", items)
    if not recs:
        log.warning("text_impression: no item has both a findings and an impression section")
        return {"n": 0, "metrics": {}}
    scored = score_texts(
        [r["output"] for r in recs],
        [r["reference"] for r in recs],
        options,
        labeler=False,
        bertscore=False,
    )
    return {"n": scored["n"], "metrics": scored["metrics"]}


CONVENTIONS = {
    "text tasks": "real report text as the assistant turn; the RG turn carries the labeler's "
    "positives of the real findings and no <image> placeholder (text-only generation)",
    "text_correction": "one request per report (add one absent or remove one present label the "
    "labeler detects by name; deterministic per study and seed); "
    "scored with the chat's correction check",
    "text_impression": "ROUGE-L, BLEU, METEOR against the real impression section",
}


def lora_is_identity(model: Any) -> bool | None:
    """True when every LoRA B matrix is zero (the LLM behaves as its base); None without LoRA."""
    bs = [p for n, p in model.llm.named_parameters() if "lora_B" in n]
    if not bs:
        return None
    return all(bool((p == 0).all()) for p in bs)
