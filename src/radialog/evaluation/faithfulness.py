"""Does the report say what the prompt's findings list says? Measures for `benchmarks/quality.py`.

Three kinds of items, each a findings list and what the model sees besides it:
- phantom: phantom-iu test images; the list is the model's own classifier output (as at
  inference), the reference report is the real IU text the phantom was drawn from;
- text: real IU test findings sections, no image; the list is the labeler's positives of the
  real report (text-only prompt, as `radialog eval`'s text tasks);
- counterfactual: a few fixed images, each with findings lists drawn at random (0-3 labels), so
  that image and list disagree: the list must win.

Measures (each with a bootstrap CI over items):
- faithfulness: micro F1 between the listed findings and the positives the labeler reads in the
  generated report, No Finding left out on both sides (an empty list and a normal report add
  nothing; a finding asserted for an empty list is a false positive);
- binary QA agreement: after the report, "Is there any X?" for one listed and one unlisted label;
  agreement = answered "yes" exactly when X is listed;
- degeneration: share of reports that repeat a sentence, share of generated words that do not
  occur in the IU report vocabulary;
- repair: the same faithfulness after `RadialogModel.repair_report` (what the system returns:
  the correction turn, then the sentence repair when the turn was not enough), and after the
  correction turn alone (the "turn" rows: what the repair added before the sentence step).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radialog.labels import CHEXPERT_LABELS, NO_FINDING
from radialog.model.repetition import repeats_a_sentence  # one definition of a sentence loop

FINDINGS = tuple(n for n in CHEXPERT_LABELS if n != NO_FINDING)
NORMAL_REPORT = "No acute cardiopulmonary abnormality."
_WORD = re.compile(r"[a-z]+")


@dataclass
class FaithItem:
    kind: str  # phantom | text | counterfactual
    id: str
    listed: list[str] | None  # None: the model's classifier decides (phantom items)
    image: Path | None = None
    reference: str | None = None


@dataclass
class FaithRecord:
    item: FaithItem
    listed: list[str]
    report: str
    labels: dict[str, int | None]
    repaired: str | None = None  # the report after the repair (None: none was kept)
    repaired_labels: dict[str, int | None] | None = None
    repair_method: str | None = None  # "correction" or "sentences" when a repair was kept
    # The correction turn alone (None: it was not kept): the repair before the sentence step.
    turn_repaired: str | None = None
    turn_repaired_labels: dict[str, int | None] | None = None
    qa: list[tuple[str, bool, str]] = field(default_factory=list)  # (label, listed?, answer)


# ---------------------------------------------------------------------- items


def phantom_items(studies: Sequence[Any], limit: int) -> list[FaithItem]:
    out = []
    for study in studies[:limit]:
        image = study.frontal_image()
        out.append(FaithItem("phantom", study.id, None, Path(image.path), study.findings))
    return out


def text_items(studies: Sequence[Any], limit: int) -> list[FaithItem]:
    """IU studies with a findings section; the list is the labeler's positives of it."""
    out = []
    for study in studies:
        if not study.findings or study.labels is None:
            continue
        listed = [n for n in FINDINGS if study.labels.get(n) == 1]
        out.append(FaithItem("text", study.id, listed, None, study.findings))
        if len(out) >= limit:
            break
    return out


def counterfactual_items(
    images: Sequence[Path], lists_per_image: int, seed: int = 0, max_size: int = 3
) -> list[FaithItem]:
    """Each image with random findings lists of 0..max_size labels (fixed by the seed)."""
    rng = random.Random(seed)
    out = []
    for image in images:
        for k in range(lists_per_image):
            size = rng.randint(0, max_size)
            listed = sorted(rng.sample(FINDINGS, size), key=FINDINGS.index)
            out.append(FaithItem("counterfactual", f"{Path(image).stem}#{k}", listed, Path(image)))
    return out


# ---------------------------------------------------------------------- scoring


def positives(labels: dict[str, int | None]) -> set[str]:
    return {n for n in FINDINGS if labels.get(n) == 1}


def counts(listed: Sequence[str], labels: dict[str, int | None]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of the report against its list."""
    want, said = set(listed) - {NO_FINDING}, positives(labels)
    return len(want & said), len(said - want), len(want - said)


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0


def with_ci(
    per_item: np.ndarray, statistic: Callable[[np.ndarray], float], samples: int, seed: int
) -> dict[str, float | int | None]:
    """Point value and 95 % percentile bootstrap interval, resampling items."""
    n = len(per_item)
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    rng = np.random.default_rng(seed)
    stats = [statistic(per_item[rng.integers(0, n, n)]) for _ in range(samples)]
    low, high = np.percentile(stats, [2.5, 97.5])
    return {"value": statistic(per_item), "ci_low": float(low), "ci_high": float(high), "n": n}


def micro_f1(rows: np.ndarray) -> float:
    tp, fp, fn = rows.sum(0)
    return _f1(tp, fp, fn)


STAGES = ("draft", "turn", "repaired")  # the report as generated / after the turn / returned


def stage_labels(r: FaithRecord, stage: str) -> dict[str, int | None]:
    """The labels of a record's report at a stage (a stage that kept nothing: the draft's)."""
    if stage == "repaired" and r.repaired_labels is not None:
        return r.repaired_labels
    if stage == "turn" and r.turn_repaired_labels is not None:
        return r.turn_repaired_labels
    return r.labels


def faithfulness(
    records: Sequence[FaithRecord], stage: str = "draft", samples: int = 1000, seed: int = 0
) -> dict[str, float | int | None]:
    rows = [counts(r.listed, stage_labels(r, stage)) for r in records]
    return with_ci(np.array(rows, dtype=float).reshape(-1, 3), micro_f1, samples, seed)


def qa_agreement(records: Sequence[FaithRecord], samples: int = 1000, seed: int = 0) -> dict:
    hits = [
        float(("yes" in answer.lower()) == listed) for r in records for _, listed, answer in r.qa
    ]
    return with_ci(np.array(hits), lambda x: float(x.mean()), samples, seed)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def iu_vocabulary(reports: Sequence[Any]) -> set[str]:
    """Lower-case words of every section of the IU reports (`radialog.data.iu.read_reports`)."""
    vocab: set[str] = set()
    for report in reports:
        for text in report.sections.values():
            if text:
                vocab.update(words(text))
    return vocab


def degeneration(
    texts: Sequence[str], vocab: set[str], samples: int = 1000, seed: int = 0
) -> dict[str, dict]:
    repeat = np.array([float(repeats_a_sentence(t)) for t in texts])
    oov = np.array(
        [(sum(w not in vocab for w in words(t)), len(words(t))) for t in texts], dtype=float
    ).reshape(-1, 2)
    return {
        "repeat_share": with_ci(repeat, lambda x: float(x.mean()), samples, seed),
        "oov_share": with_ci(
            oov, lambda x: float(x[:, 0].sum() / max(1.0, x[:, 1].sum())), samples, seed
        ),
    }


# ---------------------------------------------------------------------- generation


def qa_labels(listed: Sequence[str], rng: random.Random) -> list[tuple[str, bool]]:
    """One listed label (if any) and one unlisted label to ask about."""
    asked = []
    if listed:
        asked.append((rng.choice(list(listed)), True))
    others = [n for n in FINDINGS if n not in listed]
    asked.append((rng.choice(others), False))
    return asked


class ConstantNormal:
    """The constant normal-report baseline: the same report for every list, "no" to every QA.

    It has no classifier: `lists` (item id -> list) gives the phantom items a list, e.g. the one
    a model's classifier predicted; without it they list nothing (and the normal report is then
    trivially faithful)."""

    name = "normal report"

    def __init__(self, lists: dict[str, list[str]] | None = None) -> None:
        self.lists = lists or {}

    def run(self, items: Sequence[FaithItem], labeler: Any, **_: Any) -> list[FaithRecord]:
        labels = labeler.label([NORMAL_REPORT])[0].labels
        out = []
        for item in items:
            listed = list(item.listed or self.lists.get(item.id, []))
            rec = FaithRecord(item, listed, NORMAL_REPORT, dict(labels))
            rec.qa = [(n, w, "no") for n, w in qa_labels(listed, random.Random(item.id))]
            out.append(rec)
        return out


def run_model(
    model: Any,
    items: Sequence[FaithItem],
    labeler: Any,
    *,
    max_new_tokens: int = 120,
    qa: bool = True,
    repair: bool = True,
    batch_size: int = 8,
    progress: Callable[[int], Any] | None = None,
) -> list[FaithRecord]:
    """Reports (+ QA answers + one repair turn) from a `RadialogModel` for the items."""
    from radialog.model.prompt import binary_question, findings_text, report_conversation, text_only

    records: list[FaithRecord] = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        convs, tokens, lists = [], [], []
        for item in batch:
            if item.image is not None:
                analysis = model.analyse_image(item.image)
                listed = analysis.predicted if item.listed is None else list(item.listed)
                tok = analysis.image_tokens[0]
                conv = report_conversation(findings_text(listed))
            else:
                listed, tok = list(item.listed or []), None
                conv = report_conversation(findings_text(listed))
                conv.messages[0].text = text_only(conv.messages[0].text)
            convs.append(conv)
            tokens.append(tok)
            lists.append([n for n in listed if n != NO_FINDING])
        texts = model.generate_batch(convs, tokens, max_new_tokens=max_new_tokens)
        results = labeler.label([t or "" for t in texts])
        done = []
        for item, conv, tok, listed, text, result in zip(
            batch, convs, tokens, lists, texts, results, strict=True
        ):
            rec = FaithRecord(item, listed, text.strip(), dict(result.labels))
            if repair:
                fixed_text, _, check = model.repair_report(
                    conv.copy().add_assistant(rec.report),
                    listed,
                    tok,
                    max_new_tokens=max_new_tokens,
                )
                if check.repaired:
                    rec.repaired = fixed_text
                    rec.repaired_labels = dict(labeler.label([fixed_text])[0].labels)
                    rec.repair_method = check.repair_method
                turn = next((a for a in check.attempts if a["method"] == "correction"), None)
                if turn is not None and turn["kept"]:
                    rec.turn_repaired = turn["report"]
                    rec.turn_repaired_labels = dict(labeler.label([turn["report"]])[0].labels)
            done.append((rec, conv, tok))
        if qa:
            asks, ask_tokens, slots = [], [], []
            for rec, conv, tok in done:
                for label, listed in qa_labels(rec.listed, random.Random(rec.item.id)):
                    asks.append(
                        conv.copy().add_assistant(rec.report).add_user(binary_question(label))
                    )
                    ask_tokens.append(tok)
                    slots.append((rec, label, listed))
            answers = model.generate_batch(asks, ask_tokens, max_new_tokens=10)
            for (rec, label, listed), answer in zip(slots, answers, strict=True):
                rec.qa.append((label, listed, answer.strip()))
        records += [rec for rec, _, _ in done]
        if progress:
            progress(len(batch))
    return records


CE_CONVENTION = "ce_radialog_uncertain_negative"


def clinical_f1(records: Sequence[FaithRecord], labeler: Any, stage: str = "draft") -> float | None:
    """CE macro F1 (14 labels, RaDialog's convention) of the reports against their reference
    texts (phantom items), at a stage (`STAGES`)."""
    from radialog.metrics.clinical import clinical_efficacy, label_matrix

    rows = [r for r in records if r.item.reference]
    if not rows:
        return None
    refs = labeler.label([r.item.reference for r in rows])
    preds = [stage_labels(r, stage) for r in rows]
    ce = clinical_efficacy(label_matrix(preds), label_matrix(refs), CE_CONVENTION)
    return float(ce["metrics"]["f1_macro/14"])


def summarize(
    records: Sequence[FaithRecord],
    vocab: set[str],
    samples: int = 1000,
    seed: int = 0,
    labeler: Any = None,
) -> dict[str, Any]:
    """All measures of one model: per kind and overall."""
    out: dict[str, Any] = {}
    phantom = [r for r in records if r.item.kind == "phantom"]
    if labeler is not None and phantom:
        for stage in STAGES:
            key = "ce_f1_phantom" + ("" if stage == "draft" else f"_{stage}")
            out[key] = {"value": clinical_f1(phantom, labeler, stage), "n": len(phantom)}
    for kind in ("phantom", "text", "counterfactual"):
        part = [r for r in records if r.item.kind == kind]
        if part:
            for stage in STAGES:
                key = f"faithfulness_{kind}" + ("" if stage == "draft" else f"_{stage}")
                out[key] = faithfulness(part, stage, samples, seed)
            out[f"repaired_share_{kind}"] = float(np.mean([r.repaired is not None for r in part]))
            out[f"sentence_repair_share_{kind}"] = float(
                np.mean([r.repair_method == "sentences" for r in part])
            )
    if any(r.qa for r in records):
        out["qa_agreement"] = qa_agreement(records, samples, seed)
    out.update(degeneration([r.report for r in records], vocab, samples, seed))
    return out


def record_dict(r: FaithRecord) -> dict[str, Any]:
    return {
        "kind": r.item.kind,
        "id": r.item.id,
        "listed": r.listed,
        "report": r.report,
        "stated": sorted(positives(r.labels)),
        "repaired": r.repaired,
        "repair_method": r.repair_method,
        "turn_repaired": r.turn_repaired,
        "qa": [{"label": a, "listed": b, "answer": c} for a, b, c in r.qa],
    }
