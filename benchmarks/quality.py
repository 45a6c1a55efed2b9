"""Quality: does training help? Several models side by side on the same `radialog eval` runs.

For each model spec it runs `radialog eval` (resumable: rerunning continues) on
(i) phantom-iu test report generation: CE macro F1 over the 14 labels (RaDialog's convention),
    BLEU-4, ROUGE-L, BERTScore, and the findings classifier's macro AUROC / F1;
(ii) IU X-ray test follow-ups on the real report text (no image): `text_correction` (success,
    took effect, nothing else changed) and `text_impression` (ROUGE-L);
(iii) findings-faithfulness (`radialog.evaluation.faithfulness`, in a worker process per model):
    micro F1 between the prompt's findings list and the labeler's positives of the report on
    (a) phantom-iu test (the classifier's list), (b) real IU test text without image (the real
    report's labels as the list), (c) counterfactual lists on fixed images; the same after the
    repair (the correction turn, then the sentence repair) and after the correction turn
    alone; binary QA agreement with the list; degeneration (reports repeating a
    sentence, generated words outside the IU vocabulary);
plus the constant normal-report baseline on (i) and (iii). Prints one table (a row per measure,
a column per model, the target beside it) and writes `quality.json` / `quality.md`.

Model specs: a model name (`radialog-mini`), a saved model directory, or `untrained:NAME` (the
named config without trained weights: the base LLM with a zero LoRA, i.e. no fine-tuning).
Prefix `LABEL=` to name a column, e.g. `base=untrained:radialog-mini`.

    .venv/bin/python benchmarks/quality.py base=untrained:radialog-mini \\
        instruct=src/radialog/weights/radialog-mini report-only=/tmp/mini/report --limit 20

Defaults (no arguments, as `make bench` runs it): untrained vs embedded radialog-mini, 5 items.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_IMAGES = REPO.parent / "shared" / "data" / "images"
SPLIT_FILE = REPO.parent / "shared" / "data" / "iu" / "r2gen_annotation.json"
CE = "ce_radialog_uncertain_negative/f1_macro/14"
# Bumped when the faithfulness suite measures something new: older finished suites rerun.
FAITH_SUITE_VERSION = 2

# (column, suite, path into metrics.json's tasks, scale)
COLUMNS: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("CE F1", "rg", ("rg", "metrics", CE), 100.0),
    ("B-4", "rg", ("rg", "metrics", "bleu_4"), 100.0),
    ("R-L", "rg", ("rg", "metrics", "rouge_l"), 100.0),
    ("BS", "rg", ("rg", "metrics", "bertscore_f1"), 100.0),
    ("Cls AUROC", "rg", ("rg", "classifier", "macro_auroc"), 100.0),
    ("Cls F1", "rg", ("rg", "classifier", "macro_f1"), 100.0),
    ("Corr success", "text", ("text_correction", "metrics", "success_rate"), 100.0),
    ("Corr took effect", "text", ("text_correction", "metrics", "took_effect"), 100.0),
    ("Corr unchanged", "text", ("text_correction", "metrics", "unchanged"), 100.0),
    ("Imp R-L", "text", ("text_impression", "metrics", "rouge_l"), 100.0),
)


# (row, source, path into the faithfulness summary, scale, target)
FAITH_ROWS: tuple[tuple[str, tuple[str, ...], float, str], ...] = (
    ("Faithfulness (a) phantom, classifier list", ("faithfulness_phantom",), 100.0, ">= 90"),
    ("Faithfulness (b) IU text, real labels", ("faithfulness_text",), 100.0, ">= 90"),
    ("Faithfulness (c) counterfactual lists", ("faithfulness_counterfactual",), 100.0, ">= 80"),
    ("CE F1, faithfulness items (a), draft", ("ce_f1_phantom",), 100.0, ""),
    ("CE F1, faithfulness items (a), with repair", ("ce_f1_phantom_repaired",), 100.0, ""),
    ("(a) with repair", ("faithfulness_phantom_repaired",), 100.0, ""),
    ("(b) with repair", ("faithfulness_text_repaired",), 100.0, ""),
    ("(c) with repair", ("faithfulness_counterfactual_repaired",), 100.0, ""),
    ("(a) correction turn only", ("faithfulness_phantom_turn",), 100.0, ""),
    ("(b) correction turn only", ("faithfulness_text_turn",), 100.0, ""),
    ("(c) correction turn only", ("faithfulness_counterfactual_turn",), 100.0, ""),
    ("Sentence repairs kept (a) %", ("sentence_repair_share_phantom",), 100.0, ""),
    ("Sentence repairs kept (b) %", ("sentence_repair_share_text",), 100.0, ""),
    ("Sentence repairs kept (c) %", ("sentence_repair_share_counterfactual",), 100.0, ""),
    ("Binary QA agrees with the list", ("qa_agreement",), 100.0, ">= 95"),
    ("Reports repeating a sentence %", ("repeat_share",), 100.0, "<= 5"),
    ("Words outside IU vocabulary %", ("oov_share",), 100.0, "<= 0.5"),
)
TARGETS = {
    "CE F1": ">= 0.9 x Cls F1",
    "Cls F1": ">= 60",
    "Corr success": ">= 80",
    "Corr unchanged": ">= 90",
    "B-4": "no regression",
    "R-L": "no regression",
    "BS": "no regression",
}


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """'LABEL=SPEC' / 'untrained:NAME' / NAME / DIR -> (label, radialog eval model arguments)."""
    label, sep, body = spec.partition("=")
    if not sep:
        label, body = "", spec
    if body.startswith("untrained:"):
        name = body.split(":", 1)[1]
        return label or f"{name}-untrained", ["--model", name, "--untrained"]
    return label or Path(body).name or body, ["--model", body]


def run_logged(cmd: list[str], log: Path, what: str) -> float:
    """Run a command with its output appended to `log`; wall seconds. Exits on failure."""
    t0 = time.perf_counter()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        done = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}); see {log}")
    return time.perf_counter() - t0


def run_eval(args: list[str], log: Path) -> float:
    """One `radialog eval` in a subprocess (keeps memory per model separate); wall seconds."""
    return run_logged([sys.executable, "-m", "radialog", "eval", *args], log, "radialog eval")


def run_faith(
    spec: str,
    folder: Path,
    args: argparse.Namespace,
    log: Path,
    lists_from: Path | None = None,
) -> tuple[float, dict]:
    """The faithfulness suite of one model in a worker process; (seconds, summary).

    `lists_from`: another model's faithfulness.json whose classifier lists the phantom items
    use (the constant baseline has no classifier; with an empty list it would read 100)."""
    target = folder / "faithfulness.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--faith-worker", spec, str(target)]
    settings = ["--faith-limit", str(args.faith_limit), "--cf-lists", str(args.cf_lists)]
    settings += ["--lists-from", str(lists_from)] if lists_from else []
    settings += ["--rg-tokens", str(args.rg_tokens), "--bootstrap", str(args.bootstrap)]
    settings += ["--split-file", args.split_file]
    settings += ["--no-repair"] if args.no_repair else []
    settings += ["--no-stop-repeats"] if args.no_stop_repeats else []
    cmd += settings + (["--threads", str(args.threads)] if args.threads else [])
    key = [spec, *settings, f"suite-v{FAITH_SUITE_VERSION}"]
    if target.is_file():  # resume: a finished suite with the same settings is reused
        done = json.loads(target.read_text())
        if done.get("settings") == key:
            return 0.0, done["summary"]
    seconds = run_logged(cmd, log, "faithfulness worker")
    result = json.loads(target.read_text())
    result["settings"] = key
    target.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return seconds, result["summary"]


def _folder(label: str) -> str:
    """A model column's run folder under --out."""
    return label.replace(os.sep, "_")


def _get(metrics: dict, path: tuple[str, ...]) -> dict | None:
    node = metrics.get("tasks", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, dict) and "value" in node else None


def _cell(entry: dict | None, scale: float) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    text = f"{entry['value'] * scale:.1f}"
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" [{entry['ci_low'] * scale:.0f}-{entry['ci_high'] * scale:.0f}]"
    return text


def counterfactual_images() -> list[Path]:
    """Fixed images for the counterfactual lists: the bundled example and the shared real
    radiographs (PNG/JPEG) when present."""
    from radialog.imaging import example_image_path

    images = [example_image_path()]
    if SHARED_IMAGES.is_dir():
        images += sorted(p for p in SHARED_IMAGES.iterdir() if p.suffix in {".png", ".jpg"})
    # The bundled example is NIH 00000001_000 (also in the shared folder): keep it once.
    return list({p.stem: p for p in images}.values())


def faith_worker(args: argparse.Namespace) -> int:
    """One model's faithfulness suite (run in its own process); writes a JSON summary."""
    import torch

    from radialog.data import load_dataset
    from radialog.data.iu import IUXRay, read_reports, torchxrayvision_data_dir
    from radialog.evaluation import faithfulness as F
    from radialog.labeler import get_labeler
    from radialog.model import RadialogModel

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.faith_worker[0]
    out = Path(args.faith_worker[1])
    labeler = get_labeler("rules")
    items = F.phantom_items(load_dataset("phantom-iu", "test", size=288), args.faith_limit)
    if Path(args.split_file).is_file():
        iu = IUXRay(split_file=args.split_file)
        items += F.text_items(iu.studies("test"), args.faith_limit)
    items += F.counterfactual_items(counterfactual_images(), args.cf_lists, seed=0)
    if spec == "normal":
        lists = None
        if args.lists_from:
            done = json.loads(Path(args.lists_from).read_text())["records"]
            lists = {r["id"]: r["listed"] for r in done if r["kind"] == "phantom"}
        records = F.ConstantNormal(lists).run(items, labeler)
    else:
        if spec.startswith("untrained:"):
            model = RadialogModel.from_config(spec.split(":", 1)[1])
        else:
            model = RadialogModel.from_pretrained(spec)
        model.eval()
        model.stop_repeated_sentences = not args.no_stop_repeats
        records = F.run_model(
            model, items, labeler, max_new_tokens=args.rg_tokens, repair=not args.no_repair
        )
    reports = read_reports(torchxrayvision_data_dir() / "NLMCXR_reports.tgz")
    summary = F.summarize(
        records, F.iu_vocabulary(reports), samples=args.bootstrap, labeler=labeler
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"summary": summary, "records": [F.record_dict(r) for r in records]}, indent=1),
        encoding="utf-8",
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "models",
        nargs="*",
        default=["base=untrained:radialog-mini", "radialog-mini"],
        help="model specs (see above)",
    )
    p.add_argument("--limit", type=int, default=5, help="test items per suite (default: 5)")
    p.add_argument("--rg-tokens", type=int, default=90, help="max new tokens, reports")
    p.add_argument("--text-tokens", type=int, default=90, help="max new tokens, text tasks")
    p.add_argument("--split-file", default=str(SPLIT_FILE), help="R2Gen IU split file")
    p.add_argument("--out", default=str(REPO / "runs" / "quality"), help="run folders root")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per eval")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--no-bertscore", action="store_true")
    p.add_argument("--meteor", action="store_true", help="also METEOR (needs Java)")
    p.add_argument("--no-baseline", action="store_true", help="skip the normal-report baseline")
    p.add_argument("--no-text", action="store_true", help="skip the IU text follow-ups")
    p.add_argument(
        "--faith-limit",
        type=int,
        default=None,
        help="items per faithfulness kind (default: --limit)",
    )
    p.add_argument("--cf-lists", type=int, default=6, help="random lists per counterfactual image")
    p.add_argument("--no-faith", action="store_true", help="skip the faithfulness suites")
    p.add_argument("--no-repair", action="store_true", help="faithfulness without the repair turn")
    p.add_argument(
        "--no-stop-repeats",
        action="store_true",
        help="faithfulness without the stop at a repeated sentence (the model's raw loops)",
    )
    p.add_argument("--faith-worker", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--lists-from", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.faith_limit = args.faith_limit or args.limit
    if args.faith_worker:
        return faith_worker(args)

    out = Path(args.out) / f"limit{args.limit}"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "eval.log"
    common = ["--limit", str(args.limit), "--bootstrap", str(args.bootstrap)]
    common += [] if args.meteor else ["--no-meteor"]
    common += ["--no-bertscore"] if args.no_bertscore else []
    common += ["--threads", str(args.threads)] if args.threads else []
    rg_args = ["--dataset", "phantom-iu", "--split", "test", "--tasks", "rg"]
    rg_args += ["--max-new-tokens", str(args.rg_tokens)]
    text_args = [
        "--dataset",
        "iu",
        "--split",
        "test",
        "--dataset-arg",
        f"split_file={args.split_file}",
    ]
    text_args += ["--tasks", "text_correction,text_impression"]
    text_args += ["--max-new-tokens", str(args.text_tokens)]
    do_text = not args.no_text and Path(args.split_file).is_file()
    if not args.no_text and not do_text:
        print(f"IU split file {args.split_file} missing: skipping the text follow-ups")

    rows: dict[str, dict] = {}
    for spec in args.models:
        label, model_args = parse_spec(spec)
        folder = out / _folder(label)
        entry: dict = {"spec": spec, "seconds": {}}
        entry["seconds"]["rg"] = run_eval(
            [*model_args, *rg_args, *common, "--out", str(folder / "phantom-rg")], log
        )
        entry["rg"] = json.loads((folder / "phantom-rg" / "metrics.json").read_text())
        if do_text:
            entry["seconds"]["text"] = run_eval(
                [*model_args, *text_args, *common, "--out", str(folder / "iu-text")], log
            )
            entry["text"] = json.loads((folder / "iu-text" / "metrics.json").read_text())
        if not args.no_faith:
            body = (
                model_args[1] if model_args[-1] != "--untrained" else f"untrained:{model_args[1]}"
            )
            entry["seconds"]["faith"], entry["faith"] = run_faith(body, folder, args, log)
        rows[label] = entry
        print(f"{label}: done in {sum(entry['seconds'].values()):.0f} s", flush=True)
    if not args.no_baseline:
        folder = out / "baseline-normal"
        secs = run_eval(["--baseline", "normal", *rg_args, *common, "--out", str(folder)], log)
        rows["normal report"] = {
            "spec": "--baseline normal",
            "seconds": {"rg": secs},
            "rg": json.loads((folder / "metrics.json").read_text()),
        }
        if not args.no_faith:
            # The phantom items list what the first model's classifier predicted.
            first = next((out / _folder(lab) for lab in rows if rows[lab].get("faith")), None)
            lists = first / "faithfulness.json" if first else None
            secs, rows["normal report"]["faith"] = run_faith("normal", folder, args, log, lists)
            rows["normal report"]["seconds"]["faith"] = secs

    table = {
        label: {col: _get(e.get(suite, {}), path) for col, suite, path, _ in COLUMNS}
        for label, e in rows.items()
    }
    for label, e in rows.items():
        for name, path, _, _ in FAITH_ROWS:
            value = e.get("faith", {}).get(path[0])
            table[label][name] = {"value": value} if isinstance(value, float) else value
    labels = list(rows)
    lines = ["| Measure | target | " + " | ".join(labels) + " |", "|" + "---|" * (len(labels) + 2)]
    for name, _, _, scale in COLUMNS:
        cells = [_cell(table[lab][name], scale) for lab in labels]
        lines.append(f"| {name} | {TARGETS.get(name, '')} | " + " | ".join(cells) + " |")
    for name, _, scale, target in FAITH_ROWS:
        cells = [_cell(table[lab][name], scale) for lab in labels]
        lines.append(f"| {name} | {target} | " + " | ".join(cells) + " |")
    first = next(iter(rows.values()))
    n_rg = first["rg"]["tasks"]["rg"]["n"]
    text = first.get("text", {}).get("tasks", {})
    n_c = text.get("text_correction", {}).get("n", 0)
    n_i = text.get("text_impression", {}).get("n", 0)
    print()
    print(
        f"Quality (x100, 95% bootstrap CI in brackets): phantom-iu test RG n={n_rg} "
        f"(max {args.rg_tokens} new tokens); IU test text follow-ups: correction n={n_c}, "
        f"impression n={n_i} (max {args.text_tokens} new tokens); faithfulness: "
        f"{args.faith_limit} phantom + {args.faith_limit} IU text items, "
        f"{args.cf_lists} random lists per counterfactual image"
    )
    print("\n".join(lines))
    summary = {
        "limit": args.limit,
        "faith_limit": args.faith_limit,
        "rg_tokens": args.rg_tokens,
        "text_tokens": args.text_tokens,
        "models": {
            label: {"spec": e["spec"], "seconds": e["seconds"], "metrics": table[label]}
            for label, e in rows.items()
        },
        "runs": str(out),
    }
    (out / "quality.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "quality.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwrote {out / 'quality.json'} and {out / 'quality.md'}; runs under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
