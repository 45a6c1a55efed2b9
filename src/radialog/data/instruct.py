"""The instruct dataset: report generation plus nine follow-up tasks, as LLaVA-format JSONL.

Sample format (one JSON object per line):
    {"id", "image": path | [paths] | null, "conversations": [{"from": "human"|"gpt", "value"}],
     "task", "context": "full"|"partial"|"none", "study", "source"}
`source` says where the answer comes from: "reference" (report text), "labels", "evidence"
(labeler sentences) or "replay:<generator id>" (base-LLM pseudo ground truth).

Tasks:
- report: the report-generation prompt (`radialog.model.prompt.report_prompt` with the study's
  positive labels) -> findings. Stratified as in RaDialog: abnormal studies `abnormal_repeats`
  times (2), normal ones (No Finding, or nothing positive) kept with the probability that makes
  them `normal_fraction` (1/14) of the report samples.
- binary_qa: "Is there any X?" -> "yes"/"no" from labels; with p=0.6 (when a positive exists)
  about a positive label, else about a label that is neither positive nor uncertain.
- list_findings: positive labels, lower case, ", "-joined ("no common findings" if none).
- easy_language, summarize, region_qa (heart/lungs/pleura/bones/devices): replay tasks, the
  answer is the base LLM's answer to "Report: <findings>\n<instruction>".
- correction: an incorrect report made from the true one by removing the labeler's evidence
  sentences of some positive findings and/or inserting evidence sentences of a finding this
  study lacks, taken from another study. The labeler re-reads the incorrect report; what it
  gains is to be removed, what it lost is to be added (No Finding ignored); nothing -> no
  sample. The answer is the base LLM's adapted report (replay) when a replay model is given,
  else the true findings ("reference").
- reasoning: "Why do you think the patient has X?" -> the labeler's evidence sentences for X.
- impression: findings in context -> the impression section.
- view: "<image> From what view ...?" (single turn) -> the image's view position.

Follow-up tasks are two-turn: the report-generation turn and its report, then the task turn.
Context dropping (binary_qa, list_findings, easy_language, summarize, region_qa, reasoning):
with probabilities `context_probs` the preceding report is full, partial (a random proper
subset of its sentences, kept in order; needs >= 2 sentences, else full) or none (the report
turn is left out and the task turn starts with `<image>`, so the answer must come from the
image). correction and impression always see their report; view never does.

Findings-faithfulness levers (all off by default, so a plain build is RaDialog's recipe):
- `emphasis`: report and correction samples carry `"emphasis"`, the sentences of the answer that
  state a finding (the labeler's evidence; for a correction, the sentences the wrong report
  lacks). The instruct stage weights their tokens (`emphasis_weight`), because most tokens of an
  abnormal IU report are normal sentences and a small adapter otherwise learns the template.
- `text_only_prob`: report, correction, binary_qa, list_findings and impression samples that see
  their report are sent without the image with this probability (the text-only chat case).
- `mismatch_image_prob`: a report sample shows another study's image with this probability while
  the findings list and report agree: the list, not the image, decides what the report says.
- `findings_first`: report and correction targets state the listed findings first, in list
  order (the report's own sentences, reordered), then the rest of the report: the first
  tokens of the answer then depend on the list, which a small adapter learns far sooner.
- `extra_tasks`: task -> additional samples of that task per study (e.g. thousands of rule-based
  corrections instead of a few hundred).
- `correction_wrong_list_prob`: a correction sample's report prompt lists the findings of the
  *wrong* report (the list the report was written from) with this probability, else the true
  ones. With the true list the model can fix the report by copying the list, so it learns to
  ignore the request; a radiologist's correction names what the list missed.
- `composed_reports`: report samples per study built from a random findings list (0-3 labels,
  drawn uniformly) rather than the study's own: the labeler's single-finding sentences of other
  studies for each listed label, then the study's sentences that state no finding and do not
  negate a listed one. The labeler must read back exactly the list, else the draw is retried.
  They are text-only, or show a random image with `composed_image_prob`: rare findings get as
  many samples as common ones, and list and image disagree as in the counterfactual benchmark.
- `composed_list_sizes`: weights of the composed lists' sizes (index = number of labels), so
  lists as long as the classifier's (four or five findings) are trained, too.
- `composed_followup_sizes`: the same for the first report of a composed correction or question
  (a repair may have to add a finding to a report that already states four).
- `composed_yes_prob`: a composed yes/no question asks about a listed label (answer yes) with
  this probability when the list is not empty, else about an unlisted one.
- `composed_two_changes_prob`: a composed correction changes two labels (two additions, two
  removals, or one of each, asked in the repair's wording) with this probability, as the
  automatic repair does when a report misses several findings.
- `clean_finding_sentences`: composed finding sentences leave out IU's anonymised "XXXX"
  where the finding has other sentences: "stable right-sided XXXX XXXX" names no device.

Each study draws its tasks from a random generator seeded by (seed, epoch, study id), so the
output is byte-identical for a seed, and samples are written as they are produced.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radialog.data import instruct_prompts as P
from radialog.data.replay import Chat, PseudoLabeler
from radialog.data.study import Study, StudyImage, stable_seed
from radialog.fileio import atomic_open
from radialog.labeler.text import split_report_sentences
from radialog.labels import CHEXPERT_LABELS, NO_FINDING, join_human

logger = logging.getLogger(__name__)

TASKS: tuple[str, ...] = (
    "report",
    "binary_qa",
    "list_findings",
    "easy_language",
    "summarize",
    "region_qa",
    "correction",
    "reasoning",
    "impression",
    "view",
)
FOLLOWUP_TASKS = TASKS[1:]
REPLAY_TASKS = frozenset({"easy_language", "summarize", "region_qa", "correction"})
DROPPABLE = frozenset(
    {"binary_qa", "list_findings", "easy_language", "summarize", "region_qa", "reasoning"}
)
CONTEXTS = ("full", "partial", "none")
# Contexts in the build counts: "text" = the report was shown, the image was not.
COUNT_CONTEXTS = (*CONTEXTS, "text")
# Tasks whose samples may drop the image when they show their report (`text_only_prob`).
TEXT_ONLY_TASKS = frozenset({"report", "correction", "binary_qa", "list_findings", "impression"})
# Findings lists are written in label order (as the classifier lists them).
_LABEL_ORDER = {n: i for i, n in enumerate(CHEXPERT_LABELS)}


@dataclass
class InstructConfig:
    tasks: tuple[str, ...] = TASKS
    seed: int = 0
    size: int | None = None  # total samples; None = one pass over the studies
    context_probs: tuple[float, float, float] = (0.6, 0.2, 0.2)
    abnormal_repeats: int = 2
    normal_fraction: float = 1 / 14
    followups_per_study: int = 1
    positive_question_prob: float = 0.6
    max_epochs: int = 1000
    text_only_prob: float = 0.0
    mismatch_image_prob: float = 0.0
    extra_tasks: dict[str, int] = field(default_factory=dict)
    correction_target: str = "reference"  # or "replay": the replay model's adapted report
    findings_first: bool = False
    correction_wrong_list_prob: float = 0.0
    composed_reports: int = 0
    composed_image_prob: float = 0.0
    composed_followups: int = 0
    composed_list_sizes: tuple[float, ...] = (0.1, 0.45, 0.3, 0.15)
    composed_followup_sizes: tuple[float, ...] = (0.4, 0.4, 0.2)
    composed_yes_prob: float = 0.5
    composed_two_changes_prob: float = 0.0
    clean_finding_sentences: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
        if (
            len(self.context_probs) != 3
            or min(self.context_probs) < 0
            or sum(self.context_probs) <= 0
        ):
            raise ValueError(
                "context_probs must be three non-negative numbers (full, partial, none)"
            )
        if not 0 <= self.normal_fraction <= 1:
            raise ValueError("normal_fraction must be in [0, 1]")
        if self.composed_reports < 0 or self.composed_followups < 0:
            raise ValueError("composed_reports and composed_followups must be >= 0")
        for name in (
            "text_only_prob",
            "mismatch_image_prob",
            "correction_wrong_list_prob",
            "composed_image_prob",
            "composed_yes_prob",
            "composed_two_changes_prob",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        for name in ("composed_list_sizes", "composed_followup_sizes"):
            sizes = getattr(self, name)
            if not sizes or min(sizes) < 0 or sum(sizes) <= 0:
                raise ValueError(f"{name} must be non-negative weights, not all zero")
        bad = [t for t in self.extra_tasks if t not in FOLLOWUP_TASKS]
        if bad:
            raise ValueError(
                f"extra_tasks: {', '.join(bad)} not follow-up task(s); known: "
                + ", ".join(FOLLOWUP_TASKS)
            )
        if self.correction_target not in {"reference", "replay"}:
            raise ValueError("correction_target must be 'reference' or 'replay'")


@dataclass
class _Draft:
    sample: dict[str, Any]
    replay: Chat | None = None  # the chat whose answer becomes the last gpt turn


def _random_list(
    options: list[str], size_weights: Sequence[float], rng: random.Random
) -> list[str]:
    """A findings list drawn from `options`, its size by `size_weights` (index = size)."""
    size = rng.choices(range(len(size_weights)), weights=size_weights)[0]
    return sorted(rng.sample(options, min(size, len(options))), key=_LABEL_ORDER.get)


def _norm(text: str) -> str:
    from radialog.labeler.text import clean_text

    return " ".join(clean_text(text).lower().split()).strip(" .")


def _contains_any(sentence: str, evidence: Iterable[str]) -> bool:
    s = _norm(sentence)
    return any(e and (e in s or s in e) for e in (_norm(x) for x in evidence))


class InstructBuilder:
    """Streams instruct samples for a list of studies.

    labeler: labeler name/object for evidence sentences and re-labelling corrections.
    replay: PseudoLabeler for the replay tasks; None drops easy_language, summarize and
        region_qa, and makes correction answer with the reference report.
    """

    def __init__(
        self,
        studies: Sequence[Study],
        config: InstructConfig | None = None,
        labeler: Any = "rules",
        replay: PseudoLabeler | None = None,
        replay_batch: int = 16,
    ) -> None:
        self.studies = list(studies)
        self.config = config or InstructConfig()
        from radialog.labeler import get_labeler

        self.labeler = get_labeler(labeler)
        self.replay = replay
        self.replay_batch = max(1, replay_batch)
        self.counts: Counter[tuple[str, str]] = Counter()
        tasks = list(self.config.tasks)
        if replay is None:
            skipped = [t for t in tasks if t in REPLAY_TASKS - {"correction"}]
            if skipped:
                logger.warning("no replay model: skipping %s", ", ".join(skipped))
            tasks = [t for t in tasks if t not in skipped]
        self.tasks = tuple(tasks)
        self.followups = tuple(t for t in self.tasks if t in FOLLOWUP_TASKS)
        self.keep_normal = self._normal_keep_probability()
        self._label = functools.lru_cache(maxsize=4096)(self._label_uncached)
        self._sentence_pool: (
            tuple[dict[str, list[str]], dict[str, dict[str, int | None]]] | None
        ) = None

    # ------------------------------------------------------------------ bookkeeping

    def _normal_keep_probability(self) -> float:
        """Probability of keeping a normal study's report sample (RaDialog's 1/14 stratification)."""
        rg = [s for s in self.studies if s.findings and s.labels is not None]
        normal = sum(s.is_normal for s in rg)
        abnormal = len(rg) - normal
        f = self.config.normal_fraction
        if normal == 0 or abnormal == 0 or f >= 1:
            return 1.0
        return min(1.0, f / (1 - f) * self.config.abnormal_repeats * abnormal / normal)

    def _label_uncached(self, text: str) -> tuple[dict[str, int | None], dict[str, list[str]]]:
        result = self.labeler.label([text])[0]
        return dict(result.labels), {k: list(v) for k, v in result.evidence.items()}

    # ------------------------------------------------------------------ the stream

    def samples(self) -> Iterator[dict[str, Any]]:
        """Samples in output order; stops at `config.size` when set."""
        emitted = 0
        limit = self.config.size
        pending: list[_Draft] = []
        n_replay = 0
        for draft in self._drafts():
            pending.append(draft)
            n_replay += draft.replay is not None
            # Without replay work pending, drafts go out at once; else they wait for a batch.
            if n_replay == 0 or n_replay >= self.replay_batch:
                for sample in self._resolve(pending):
                    yield sample
                    emitted += 1
                    if limit is not None and emitted >= limit:
                        return
                pending, n_replay = [], 0
        for sample in self._resolve(pending):
            yield sample
            emitted += 1
            if limit is not None and emitted >= limit:
                return

    def _resolve(self, drafts: list[_Draft]) -> Iterator[dict[str, Any]]:
        chats = [d.replay for d in drafts if d.replay is not None]
        answers = iter(self.replay(chats) if chats and self.replay is not None else [])
        for draft in drafts:
            sample = draft.sample
            if draft.replay is not None:
                answer = next(answers).strip()
                if not answer:
                    continue  # the generator said nothing: no usable target
                sample["conversations"][-1]["value"] = answer
            self.counts[(sample["task"], sample["context"])] += 1
            yield sample

    def _drafts(self) -> Iterator[_Draft]:
        order = list(range(len(self.studies)))
        epochs = 1 if self.config.size is None else self.config.max_epochs
        for epoch in range(epochs):
            random.Random(stable_seed("order", self.config.seed, epoch)).shuffle(order)
            produced = 0
            for index in order:
                study = self.studies[index]
                rng = random.Random(stable_seed(self.config.seed, epoch, study.id))
                for draft in self._study_drafts(study, rng, epoch):
                    produced += 1
                    yield draft
            if produced == 0:
                logger.warning("no study yields any sample for tasks %s", ", ".join(self.tasks))
                return

    def _study_drafts(self, study: Study, rng: random.Random, epoch: int) -> Iterator[_Draft]:
        has_report = bool(study.findings) and study.labels is not None
        if "report" in self.tasks and has_report:
            copies = 1 if study.is_normal else self.config.abnormal_repeats
            keep = rng.random() < self.keep_normal if study.is_normal else True
            for k in range(copies if keep else 0):
                image = None
                if rng.random() < self.config.mismatch_image_prob:
                    image = self.studies[rng.randrange(len(self.studies))].frontal_image()
                draft = self._draft(
                    study,
                    "report",
                    epoch,
                    k,
                    [self._report_turns(study)],
                    "full",
                    "reference",
                    image=image,
                )
                draft.sample["emphasis"] = self._finding_sentences(study)
                yield self._maybe_text_only(draft, rng)
        if "report" in self.tasks:
            for k in range(self.config.composed_reports):
                composed = self._composed_report(study, rng, epoch, k)
                if composed is not None:
                    yield composed
        for k in range(self.config.composed_followups):
            composed = self._composed_followup(study, rng, epoch, k)
            if composed is not None:
                yield composed
        if not self.followups:
            return
        candidates = list(self.followups)
        rng.shuffle(candidates)
        made = 0
        for task in candidates:
            if made >= self.config.followups_per_study:
                break
            draft = getattr(self, f"_task_{task}")(study, rng, epoch)
            if draft is not None:
                made += 1
                yield self._maybe_text_only(draft, rng)
        for task, n in sorted(self.config.extra_tasks.items()):
            if task not in self.followups:
                continue
            for k in range(n):
                draft = getattr(self, f"_task_{task}")(study, rng, epoch)
                if draft is not None:
                    draft.sample["id"] += f":x{k}"
                    yield self._maybe_text_only(draft, rng)

    def _sentences_by_finding(
        self,
    ) -> tuple[dict[str, list[str]], dict[str, dict[str, int | None]]]:
        """Sentences of all reports that state exactly one finding (finding -> sentences), and
        the labels of every sentence that states none (sentence -> labels; its negations)."""
        if self._sentence_pool is None:
            by_finding: dict[str, list[str]] = {}
            neutral: dict[str, dict[str, int | None]] = {}
            for study in self.studies:
                for sentence in split_report_sentences(study.findings or ""):
                    if sentence in neutral:
                        continue
                    labels = self._label_sentence(sentence)
                    stated = {n for n, v in labels.items() if v in (1, -1) and n != NO_FINDING}
                    if not stated:
                        neutral[sentence] = labels
                    elif len(stated) == 1 and labels[next(iter(stated))] == 1:
                        pool = by_finding.setdefault(next(iter(stated)), [])
                        if sentence not in pool:
                            pool.append(sentence)
            if self.config.clean_finding_sentences:
                for name, pool in by_finding.items():
                    clean = [s for s in pool if "XXXX" not in s]
                    by_finding[name] = clean or pool
            self._sentence_pool = (by_finding, neutral)
        return self._sentence_pool

    def _label_sentence(self, sentence: str) -> dict[str, int | None]:
        return self._label(sentence)[0]

    def _compose(
        self, study: Study, listed: list[str], stated: dict[str, str]
    ) -> tuple[list[str], str] | None:
        """(finding sentences, report) stating exactly `listed` on this study's normal
        sentences; `stated` gives the sentence per label. None when the labeler disagrees."""
        _, neutral = self._sentences_by_finding()
        base = [s for s in split_report_sentences(study.findings or "") if s in neutral]
        first = [stated[n] for n in listed]
        rest = [s for s in base if all(neutral[s].get(n) is None for n in listed)]
        if not rest:
            return None
        text = " ".join(first + rest)
        labels, _ = self._label(text)
        said = {n for n, v in labels.items() if v == 1 and n != NO_FINDING}
        uncertain = any(v == -1 for n, v in labels.items() if n != NO_FINDING)
        if said != set(listed) or uncertain:
            return None
        return first, text

    def _composed_followup(
        self, study: Study, rng: random.Random, epoch: int, k: int, tries: int = 4
    ) -> _Draft | None:
        """A correction or yes/no question on a report composed for a random list.

        The first turn is the report for list L1. A correction asks to add a label not in L1
        (the report may state it is absent: that sentence must go) or to remove one of L1;
        the answer is the report composed for the new list, the rest unchanged. The prompt
        lists L1 (the radiologist's correction) or, for additions with p=0.3, the new list
        (the automatic repair of a report that omits a listed finding). A question asks about
        a listed label (yes) or an unlisted one (no)."""
        from radialog.model.prompt import (
            binary_question,
            correction_prompt,
        )

        by_finding, _ = self._sentences_by_finding()
        options = [n for n in CHEXPERT_LABELS if n in by_finding]
        if not options:
            return None
        for _ in range(tries):
            first = _random_list(options, self.config.composed_followup_sizes, rng)
            stated = {n: rng.choice(by_finding[n]) for n in options}
            draft = self._compose(study, first, stated)
            if draft is None:
                continue
            listed, (_, report) = first, draft
            if rng.random() < 0.4:
                if first and rng.random() < self.config.composed_yes_prob:
                    label, answer = rng.choice(first), "yes"
                else:
                    label, answer = rng.choice([n for n in options if n not in first]), "no"
                question = rng.choice([binary_question(label), *P.BINARY_QA]).format(
                    finding=label.lower(), Finding=label
                )
                task, reply, emphasis = "binary_qa", answer, []
            else:
                add, remove = self._composed_changes(first, options, rng)
                second = sorted(
                    [*(n for n in first if n not in remove), *add], key=_LABEL_ORDER.get
                )
                if add and rng.random() < 0.3:
                    listed = second  # the repair case: the list names what is missing
                fixed = self._compose(study, second, stated)
                if fixed is None:
                    continue
                change = (add or remove)[0]
                if len(add) + len(remove) > 1 or rng.random() < 0.5:
                    question = correction_prompt(remove, add) or ""
                elif add:
                    question = rng.choice(P.CORRECTION_ADD).format(add=change.lower())
                else:
                    low = change.lower()
                    question = rng.choice(P.CORRECTION_REMOVE).format(
                        remove=low, Remove=low.capitalize()
                    )
                task, reply = "correction", fixed[1]
                old = split_report_sentences(report)
                emphasis = [x for x in split_report_sentences(reply) if x not in old]
            prompt, image = self._composed_prompt(listed, rng)
            replies = [report, question, reply]
            sample = self._composed_draft(study, task, epoch, 200 + k, prompt, image, replies)
            sample.sample["emphasis"] = emphasis
            return sample
        return None

    def _composed_changes(
        self, first: list[str], options: list[str], rng: random.Random
    ) -> tuple[list[str], list[str]]:
        """(labels to add, labels to remove) for a composed correction of list `first`."""
        absent = [n for n in options if n not in first]
        two = self.config.composed_two_changes_prob
        count = 2 if two > 0 and rng.random() < two else 1  # no draw: older builds stay identical
        add: list[str] = []
        remove: list[str] = []
        for _ in range(count):
            present = [n for n in first if n not in remove]
            missing = [n for n in absent if n not in add]
            if present and (not missing or rng.random() < 0.4):
                remove.append(rng.choice(present))
            elif missing:
                add.append(rng.choice(missing))
        return add, remove

    def _composed_report(
        self, study: Study, rng: random.Random, epoch: int, k: int, tries: int = 4
    ) -> _Draft | None:
        """A report sample for a random findings list (see `composed_reports`)."""

        by_finding, neutral = self._sentences_by_finding()
        base = [s for s in split_report_sentences(study.findings or "") if s in neutral]
        if not base or not by_finding:
            return None
        options = [n for n in CHEXPERT_LABELS if n in by_finding]
        for _ in range(tries):
            listed = _random_list(options, self.config.composed_list_sizes, rng)
            composed = self._compose(study, listed, {n: rng.choice(by_finding[n]) for n in listed})
            if composed is None:
                continue
            stated, target = composed
            prompt, image = self._composed_prompt(listed, rng)
            draft = self._composed_draft(study, "report", epoch, 100 + k, prompt, image, [target])
            draft.sample["emphasis"] = stated
            return draft
        return None

    def _composed_prompt(
        self, listed: list[str], rng: random.Random
    ) -> tuple[str, StudyImage | None]:
        """The report prompt for a composed sample, and the random image it shows (or None)."""
        from radialog.model.prompt import findings_text, report_prompt, text_only

        image = None
        if rng.random() < self.config.composed_image_prob:
            image = self.studies[rng.randrange(len(self.studies))].frontal_image()
        # An empty list reads "no common findings" or "no finding", as the classifier's may.
        shown = listed or rng.choice([[], [NO_FINDING]])
        prompt = report_prompt(findings_text(shown, clean=False))
        return (prompt if image is not None else text_only(prompt)), image

    def _composed_draft(
        self,
        study: Study,
        task: str,
        epoch: int,
        k: int,
        prompt: str,
        image: StudyImage | None,
        replies: list[str],
    ) -> _Draft:
        """A composed sample: the report prompt, then alternating answers and turns."""
        turns = [(prompt, replies[0])] + [
            (replies[i], replies[i + 1]) for i in range(1, len(replies) - 1, 2)
        ]
        context = "full" if image is not None else "text"
        draft = self._draft(study, task, epoch, k, turns, context, "composed", image)
        if image is None:
            draft.sample["image"] = None
        return draft

    def _finding_sentences(self, study: Study) -> list[str]:
        """The report's sentences that state one of its positive findings (labeler evidence),
        in the order of the findings list."""
        if not study.findings:
            return []
        labels, evidence = self._label(study.findings)
        wanted = [
            n
            for n in CHEXPERT_LABELS
            if n in study.positives and n != NO_FINDING and labels.get(n) == 1
        ]
        sentences = split_report_sentences(study.findings)
        out: list[str] = []
        # The labeler's evidence is cleaned text; the report's own sentences are what to use.
        for name in wanted:
            out += [s for s in sentences if s not in out and _contains_any(s, evidence[name])]
        return out

    def _target(self, study: Study) -> str:
        """The report as a target: as written, or with its finding sentences first."""
        if not self.config.findings_first or not study.findings:
            return study.findings or ""
        first = self._finding_sentences(study)
        rest = [s for s in split_report_sentences(study.findings) if s not in first]
        return " ".join(first + rest)

    def _maybe_text_only(self, draft: _Draft, rng: random.Random) -> _Draft:
        """With `text_only_prob`, send a sample that sees its report without the image."""
        from radialog.model.prompt import text_only

        sample = draft.sample
        if (
            sample["task"] not in TEXT_ONLY_TASKS
            or sample["context"] == "none"
            or self.config.text_only_prob <= 0
            or rng.random() >= self.config.text_only_prob
        ):
            return draft
        for turn in sample["conversations"]:
            if turn["from"] == "human":
                turn["value"] = text_only(turn["value"])
        sample["image"] = None
        sample["context"] = "text"
        return draft

    # ------------------------------------------------------------------ sample assembly

    def _report_turns(self, study: Study) -> tuple[str, str]:
        from radialog.model.prompt import findings_text, report_prompt

        return report_prompt(findings_text(study.positives, clean=False)), self._target(study)

    def _draft(
        self,
        study: Study,
        task: str,
        epoch: int,
        k: int,
        turns: list[tuple[str, str]],
        context: str,
        source: str,
        image: StudyImage | None = None,
        replay: Chat | None = None,
    ) -> _Draft:
        conversations = []
        for human, gpt in turns:
            conversations += [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]
        image = image or study.frontal_image()
        sample = {
            "id": f"{study.id}:{task}:{epoch}:{k}",
            "image": str(image.path) if image is not None and image.path is not None else None,
            "conversations": conversations,
            "task": task,
            "context": context,
            "study": study.id,
            "source": source,
        }
        return _Draft(sample, replay)

    def _followup(
        self,
        study: Study,
        task: str,
        rng: random.Random,
        epoch: int,
        instruction: str,
        answer: str,
        source: str,
        context: str | None = None,
        report_text: str | None = None,
        replay: Chat | None = None,
        image: StudyImage | None = None,
        listed: list[str] | None = None,
    ) -> _Draft:
        from radialog.model.prompt import IMAGE_PLACEHOLDER, findings_text, report_prompt

        if context is None:
            context = self._pick_context(study, task, rng)
        prompt, findings = self._report_turns(study)
        if listed is not None:  # the report turn was written from this list instead
            prompt = report_prompt(findings_text(listed, clean=False))
        if report_text is not None:
            findings = report_text
        if context == "partial":
            sentences = split_report_sentences(findings)
            keep = sorted(rng.sample(range(len(sentences)), rng.randint(1, len(sentences) - 1)))
            findings = " ".join(sentences[i] for i in keep)
        if context == "none":
            turns: list[tuple[str, str]] = []
            instruction = f"{IMAGE_PLACEHOLDER} {instruction}"
        else:
            turns = [(prompt, findings)]
        turns.append((instruction, answer))
        return self._draft(study, task, epoch, 0, turns, context, source, image, replay)

    def _pick_context(self, study: Study, task: str, rng: random.Random) -> str:
        if task not in DROPPABLE:
            return "full"
        if not study.findings:
            return "none"
        context = rng.choices(CONTEXTS, weights=self.config.context_probs)[0]
        if context == "partial" and len(split_report_sentences(study.findings)) < 2:
            return "full"
        return context

    def _replay_source(self) -> str:
        assert self.replay is not None
        return f"replay:{self.replay.generator_id}"

    # ------------------------------------------------------------------ tasks

    def _task_binary_qa(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        if study.labels is None:
            return None
        positives = [p for p in study.positives if p != NO_FINDING]
        if positives and rng.random() < self.config.positive_question_prob:
            label, answer = rng.choice(positives), "yes"
        else:
            # Not positive and not uncertain: a "no" must be a real no.
            negatives = [n for n in CHEXPERT_LABELS[1:] if study.labels.get(n) not in (1, -1)]
            if not negatives:
                return None
            label, answer = rng.choice(negatives), "no"
        question = rng.choice(P.BINARY_QA).format(finding=label.lower(), Finding=label)
        return self._followup(study, "binary_qa", rng, epoch, question, answer, "labels")

    def _task_list_findings(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        if study.labels is None:
            return None
        from radialog.model.prompt import findings_text

        answer = findings_text(study.positives, clean=False)
        return self._followup(
            study, "list_findings", rng, epoch, rng.choice(P.LIST_FINDINGS), answer, "labels"
        )

    def _replay_task(
        self, study: Study, rng: random.Random, epoch: int, task: str, instruction: str
    ) -> _Draft | None:
        if not study.findings or self.replay is None:
            return None
        chat = [
            {
                "role": "user",
                "content": P.REPLAY_SINGLE.format(report=study.findings, instruction=instruction),
            }
        ]
        return self._followup(
            study, task, rng, epoch, instruction, "", self._replay_source(), replay=chat
        )

    def _task_easy_language(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        return self._replay_task(study, rng, epoch, "easy_language", rng.choice(P.EASY_LANGUAGE))

    def _task_summarize(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        return self._replay_task(study, rng, epoch, "summarize", rng.choice(P.SUMMARIZE))

    def _task_region_qa(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        region = rng.choice(sorted(P.REGION_QA))
        return self._replay_task(study, rng, epoch, "region_qa", rng.choice(P.REGION_QA[region]))

    def _task_reasoning(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        if not study.findings or study.labels is None:
            return None
        labels, evidence = self._label(study.findings)
        options = [
            n for n in study.positives if n != NO_FINDING and labels.get(n) == 1 and evidence.get(n)
        ]
        if not options:
            return None
        label = rng.choice(options)
        answer = " ".join(dict.fromkeys(evidence[label]))
        question = rng.choice(P.REASONING).format(finding=label.lower())
        return self._followup(study, "reasoning", rng, epoch, question, answer, "evidence")

    def _task_impression(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        if not (study.findings and study.impression):
            return None
        return self._followup(
            study, "impression", rng, epoch, rng.choice(P.IMPRESSION), study.impression, "reference"
        )

    def _task_view(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        from radialog.model.prompt import IMAGE_PLACEHOLDER

        with_view = [im for im in study.images if im.view]
        if not with_view:
            return None
        image = rng.choice(with_view)
        question = f"{IMAGE_PLACEHOLDER} {rng.choice(P.VIEW)}"
        return self._draft(
            study, "view", epoch, 0, [(question, image.view)], "none", "metadata", image
        )

    def _task_correction(self, study: Study, rng: random.Random, epoch: int) -> _Draft | None:
        if not study.findings or study.labels is None:
            return None
        true_labels, evidence = self._label(study.findings)
        target = self._target(study)
        sentences = split_report_sentences(target)
        true_pos = {n for n, v in true_labels.items() if v == 1 and n != NO_FINDING}
        modes = []
        removable = [n for n in sorted(true_pos) if evidence.get(n)]
        if removable:
            modes.append("remove")
        modes.append("add")
        if removable:
            modes.append("both")
        mode = rng.choice(modes)
        wrong = list(sentences)
        if mode in {"remove", "both"}:
            drop = rng.sample(removable, rng.randint(1, min(2, len(removable))))
            ev = [s for n in drop for s in evidence[n]]
            wrong = [s for s in wrong if not _contains_any(s, ev)]
        if mode in {"add", "both"}:
            insert = self._foreign_sentence(study, true_labels, rng)
            if insert is None and mode == "add":
                return None
            if insert is not None:
                wrong.insert(rng.randint(0, len(wrong)), insert)
        wrong_text = " ".join(wrong)
        if not wrong_text or wrong_text == " ".join(sentences):
            return None
        wrong_labels, _ = self._label(wrong_text)
        wrong_pos = {n for n, v in wrong_labels.items() if v == 1 and n != NO_FINDING}
        to_add = sorted(true_pos - wrong_pos, key=_LABEL_ORDER.get)
        to_remove = sorted(wrong_pos - true_pos, key=_LABEL_ORDER.get)
        if not to_add and not to_remove:
            return None
        add, remove = join_human(to_add).lower(), join_human(to_remove).lower()
        if to_add and to_remove:
            instruction = rng.choice(P.CORRECTION_BOTH).format(add=add, remove=remove)
        elif to_add:
            instruction = rng.choice(P.CORRECTION_ADD).format(add=add)
        else:
            instruction = rng.choice(P.CORRECTION_REMOVE).format(
                remove=remove, Remove=remove.capitalize()
            )
        if self.replay is not None and self.config.correction_target == "replay":
            changes = " ".join(
                ([P.REPLAY_CORRECTION_REMOVE.format(remove=remove)] if to_remove else [])
                + ([P.REPLAY_CORRECTION_ADD.format(add=add)] if to_add else [])
            )
            chat = [
                {"role": "user", "content": P.REPLAY_CORRECTION_FIRST},
                {"role": "assistant", "content": wrong_text},
                {"role": "user", "content": P.REPLAY_CORRECTION.format(changes=changes)},
            ]
            return self._followup(
                study,
                "correction",
                rng,
                epoch,
                instruction,
                "",
                self._replay_source(),
                context="full",
                report_text=wrong_text,
                replay=chat,
            )
        listed = None
        if rng.random() < self.config.correction_wrong_list_prob:
            listed = [n for n in CHEXPERT_LABELS if wrong_labels.get(n) == 1]
        draft = self._followup(
            study,
            "correction",
            rng,
            epoch,
            instruction,
            target,
            "reference",
            context="full",
            report_text=wrong_text,
            listed=listed,
        )
        # The edit to learn: the sentences the wrong report lacks (removals show as absence).
        draft.sample["emphasis"] = [s for s in sentences if s not in wrong]
        return draft

    def _foreign_sentence(
        self, study: Study, labels: dict[str, int | None], rng: random.Random, tries: int = 8
    ) -> str | None:
        """An evidence sentence of a finding this study does not have, from another study."""
        for _ in range(tries):
            other = self.studies[rng.randrange(len(self.studies))]
            if other.id == study.id or not other.findings:
                continue
            other_labels, other_evidence = self._label(other.findings)
            options = [
                n
                for n, v in other_labels.items()
                if v == 1
                and n != NO_FINDING
                and labels.get(n) in (0, None)
                and other_evidence.get(n)
            ]
            if options:
                return rng.choice(other_evidence[rng.choice(options)])
        return None


# ---------------------------------------------------------------------- writing


@dataclass
class BuildResult:
    path: Path
    total: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> context -> n


def write_jsonl(samples: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write samples one per line (atomically: a temp file renamed at the end)."""
    n = 0
    with atomic_open(path, "w", newline="\n") as handle:
        for sample in samples:
            handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
            n += 1
    return n


def build_instruct(
    studies: Sequence[Study],
    out_path: str | Path,
    config: InstructConfig | None = None,
    labeler: Any = "rules",
    replay: PseudoLabeler | None = None,
    progress: Any = None,
) -> BuildResult:
    """Build and write the instruct JSONL; returns per-task/context counts.

    progress: optional callable called with each sample (e.g. a progress-bar update).
    """
    builder = InstructBuilder(studies, config, labeler=labeler, replay=replay)

    def stream() -> Iterator[dict[str, Any]]:
        for sample in builder.samples():
            if progress is not None:
                progress(sample)
            yield sample

    total = write_jsonl(stream(), out_path)
    counts: dict[str, dict[str, int]] = {}
    for (task, context), n in sorted(builder.counts.items()):
        counts.setdefault(task, {})[context] = n
    return BuildResult(Path(out_path), total, counts)
