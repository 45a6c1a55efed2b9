"""`radialog score` end to end on real IU report text (METEOR + rule labeler, no BERTScore)."""

from __future__ import annotations

import csv
import json

import pytest

from metrics_data import shuffled_pairs
from radialog.cli import main


def _write(tmp_path, preds, refs):
    pred_path, ref_path = tmp_path / "pred.csv", tmp_path / "ref.jsonl"
    with pred_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        # Written in reverse order: matching must go by id, not by position.
        for i, text in reversed(list(enumerate(preds))):
            writer.writerow([f"s{i}", text])
    ref_path.write_text(
        "".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(refs))
    )
    return pred_path, ref_path


@pytest.mark.slow  # every metric, METEOR through Java and BERTScore included
def test_score_end_to_end(tmp_path, capsys):
    preds, refs = shuffled_pairs(40)
    pred_path, ref_path = _write(tmp_path, preds, refs)
    out, png = tmp_path / "out" / "metrics.json", tmp_path / "f1.png"
    args = ["score", "--pred", str(pred_path), "--ref", str(ref_path), "--json", str(out)]
    rc = main(args + ["--plot", str(png), "--no-bertscore", "--bootstrap", "200"])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["n"] == 40 and result["labeler"]
    for key in (
        "bleu_1",
        "bleu_4",
        "meteor",
        "rouge_l",
        "cider",
        "ce_radialog_uncertain_negative/f1_macro/14",
    ):
        m = result["metrics"][key]
        assert m["ci_low"] <= m["value"] <= m["ci_high"] and m["convention"]
    assert "ce_uncertain_positive/f1_micro/5" in result["metrics"]
    assert set(result["per_label"]["ce_uncertain_positive"]) >= {"No Finding", "Edema"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob(".*tmp"))  # atomic write left no temp file
    printed = capsys.readouterr().out
    assert "bleu_4" in printed and "meteor" in printed


def test_identical_reports_score_perfectly(tmp_path):
    _, refs = shuffled_pairs(10)
    pred_path, ref_path = _write(tmp_path, refs, refs)
    out = tmp_path / "m.json"
    argv = ["score", "--pred", str(pred_path), "--ref", str(ref_path), "--json", str(out)]
    assert main(argv + ["--no-bertscore", "--no-meteor", "--bootstrap", "0"]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["bleu_4"]["value"] == pytest.approx(1.0)
    assert metrics["rouge_l"]["value"] == pytest.approx(1.0)
    assert metrics["bleu_4"]["ci_low"] is None and "meteor" not in metrics


def test_missing_ids_are_listed(tmp_path, capsys):
    preds, refs = shuffled_pairs(12)
    pred_path, ref_path = _write(tmp_path, preds[:9], refs)
    with pred_path.open("a", newline="") as fh:
        csv.writer(fh).writerow(["extra-1", "The lungs are clear."])
    rc = main(["score", "--pred", str(pred_path), "--ref", str(ref_path), "--no-bertscore"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "3 id(s) missing in" in err and "s9, s10, s11" in err
    assert "1 id(s) missing in" in err and "extra-1" in err
    assert "Traceback" not in err
