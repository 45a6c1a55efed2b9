"""Dialog sessions on the tiny random model: format, follow-ups, truncation, correction
check, saving, and the terminal chat with piped input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from data_paths import EXAMPLE_IMAGE, SHARED_DATA
from radialog.chat import GenerationOptions, Session
from radialog.chat.correction import check_correction
from radialog.chat.prompts import EASY_LANGUAGE_PROMPT
from radialog.labeler import label_report
from radialog.model.prompt import SYSTEM_PROMPT, correction_prompt


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    return RadialogModel.from_config("tiny")


@pytest.fixture()
def image() -> Path:
    if EXAMPLE_IMAGE.exists():
        return EXAMPLE_IMAGE
    alt = SHARED_DATA / "images" / "00000001_000.png"
    if not alt.exists():
        pytest.skip("no example image available")
    return alt


def test_report_then_follow_ups_use_radialog_format(model, image) -> None:
    s = Session(model, image, options=GenerationOptions(max_new_tokens=6))
    report = s.report()
    assert isinstance(report, str)
    assert s.report() == report  # the report is generated once
    assert set(s.findings) and len(s.findings) == 14
    assert s.report_data is not None and s.report_data["report"] == report
    s.easy_language()
    s.ask("Is the heart enlarged?")
    rendered = s.conversation().render()
    # exactly RaDialog's serialisation: system, USER/ASSISTANT turns, </s> after answers
    assert rendered.startswith(SYSTEM_PROMPT + " USER: <image>. Predicted Findings: ")
    assert f"ASSISTANT: {report}</s>USER: {EASY_LANGUAGE_PROMPT}" in rendered
    assert rendered.endswith("</s>")
    assert [t.kind for t in s.turns] == ["report", "report", "easy", "easy", "ask", "ask"]


def test_greedy_is_deterministic(model, image) -> None:
    a = Session(model, image, options=GenerationOptions(max_new_tokens=6))
    b = Session(model, image, options=GenerationOptions(max_new_tokens=6))
    assert a.report() == b.report()
    assert a.summarize() == b.summarize()


def test_history_is_truncated_not_failed(model, image) -> None:
    s = Session(model, image, max_context_tokens=260, options=GenerationOptions(max_new_tokens=4))
    s.report()
    base = s._count(s.conversation().render())
    for i in range(8):
        s.ask(
            f"Question number {i}: describe the left lung base and the costophrenic angles in detail."
        )
    assert s.dropped_turns > 0 and s.dropped_turns % 2 == 0
    assert any("left out" in n for n in s.notices)
    kept = s.fitted_turns()
    # the image/report exchange and the newest exchange survive
    assert kept[0].kind == "report" and kept[1].kind == "report"
    assert kept[-1] is s.turns[-1]
    assert s._count(s.conversation(kept).render()) <= s.prompt_budget() or len(kept) == 3
    assert base < s.prompt_budget()
    # the full history is still kept for saving
    assert len(s.turns) == 2 + 16


def test_reset_keeps_the_report(model, image) -> None:
    s = Session(model, image, options=GenerationOptions(max_new_tokens=4))
    report = s.report()
    s.impression()
    s.translate("German")
    assert s.turns[-2].prompt == "Translate this report into German."
    s.reset()
    assert len(s.turns) == 2 and s.current_report == report


def test_correct_sends_radialog_prompt_and_checks_result(model, image) -> None:
    s = Session(model, image, options=GenerationOptions(max_new_tokens=6))
    s.report()
    result = s.correct(add=["effusion"], remove=["pneumothorax"])
    assert s.turns[-2].prompt == correction_prompt(["Pneumothorax"], ["Pleural Effusion"])
    assert s.current_report == result.report
    assert set(result.added) == {"Pleural Effusion"} and set(result.removed) == {"Pneumothorax"}
    # the check reflects the labeler's reading of the new report
    labels = label_report(result.report).labels
    assert result.added["Pleural Effusion"] == (labels["Pleural Effusion"] == 1)
    # only No Finding requested: RaDialog's KEEP_OLD, nothing generated
    n = len(s.turns)
    kept = s.correct(add=["No Finding"])
    assert kept.kept_old and kept.report == s.current_report and len(s.turns) == n


def test_correction_check_on_real_report_text() -> None:
    before = "There is a small right pneumothorax. No pleural effusion. The heart is enlarged."
    good = "Small right pleural effusion. No pneumothorax. The heart is enlarged."
    r = check_correction(before, good, "p", ["Pleural Effusion"], ["Pneumothorax"], label_report)
    assert r.added == {"Pleural Effusion": True} and r.removed == {"Pneumothorax": True}
    assert r.applied and r.other_changes == {}
    # a correction that also silently drops cardiomegaly and only hedges the addition
    bad = "Possible right pleural effusion. There is a right pneumothorax. Heart size is normal."
    r = check_correction(before, bad, "p", ["Pleural Effusion"], ["Pneumothorax"], label_report)
    assert r.added == {"Pleural Effusion": False}  # uncertain is not an addition
    assert r.removed == {"Pneumothorax": False}
    assert r.other_changes == {"Cardiomegaly": ("positive", "absent")}
    assert not r.applied and "also changed: cardiomegaly" in r.summary()


def test_save_json_and_markdown_atomically(model, image, tmp_path) -> None:
    s = Session(model, image, options=GenerationOptions(max_new_tokens=4))
    s.report()
    s.ask("Is there a pneumothorax?")
    (tmp_path / "out").mkdir()  # saving never creates directories (a typo must not)
    data = json.loads(s.to_json(tmp_path / "out" / "chat.json").read_text())
    assert data["report"] == s.current_report
    assert [t["kind"] for t in data["turns"]] == ["report", "report", "ask", "ask"]
    assert "radiologist" in data["disclaimer"]
    md = s.to_markdown(tmp_path / "chat.md").read_text()
    assert "## Report" in md and "Is there a pneumothorax?" in md and "radiologist" in md
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "chat.json",
        "chat.md",
        "out",
    ]  # no temp files


def test_text_only_session(model) -> None:
    s = Session(model, None, options=GenerationOptions(max_new_tokens=4))
    s.ask("What is a pleural effusion?")
    assert "<image>" not in s.conversation().render()
    with pytest.raises(Exception, match="no image"):
        s.report()


def test_terminal_chat_with_piped_input(model, image, tmp_path, monkeypatch, capsys) -> None:
    from radialog import cli
    from radialog.commands import chat as chat_cmd

    monkeypatch.setattr(chat_cmd, "load_model", lambda args: model)
    out_md = tmp_path / "conv.md"
    lines = [
        "Is there an effusion?",
        "/correct +effusion -pneumothorax",
        "/correct +banana",
        "/easy",
        f"/save {out_md}",
        "/quit",
        "never read",
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert cli.main(["chat", str(image), "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr().out
    assert "radiologist" in out and "Report:" in out
    assert "Correction check:" in out
    assert "unknown finding 'banana'" in out  # errors do not end the chat
    assert f"Saved to {out_md}" in out
    md = out_md.read_text()
    assert "/correct" in md and "/easy" in md and "never read" not in md
