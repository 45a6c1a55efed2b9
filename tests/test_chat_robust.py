"""Dialog sessions and the CLI under real conditions (issue 14): a failed correction never
replaces the report, the report's consistency block and its repair (with --no-repair),
prompts bounded by the model's context, thresholds shown, saving only into existing
directories. The tiny model's LLM is scripted where the test is about what radialog does
with an answer, not about the answer."""

from __future__ import annotations

import io
import json

import pytest
import torch

from radialog.chat import GenerationOptions, Session
from radialog.chat.correction import looks_like_report
from radialog.chat.session import PromptTooLongError
from radialog.cli import main
from radialog.errors import InvalidInputError
from radialog.imaging.phantom import render_phantom

DRAFT = "The heart is normal in size. The lungs are clear."
REPAIRED = "The heart is enlarged. The lungs are clear."
# A small phantom chest radiograph: the CLI's input gate (radialog-mini's gate/) accepts it.
IMAGE = render_phantom([], 0, size=96)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    m = RadialogModel.from_config("tiny")
    m.predicted_labels = lambda probs: ["Cardiomegaly"]  # a fixed findings list
    return m


@pytest.fixture()
def scripted(model, monkeypatch):
    """Replace the LLM's replies by these, in order; returns the list of prompts asked."""

    def script(*answers: str) -> list[str]:
        asked: list[str] = []
        replies = iter(answers)

        def generate(conversation, image_tokens=None, **kwargs):
            asked.append(conversation.messages[-1].text)
            return next(replies)

        monkeypatch.setattr(model, "generate", generate)
        return asked

    return script


@pytest.fixture()
def image_file(tmp_path):
    from PIL import Image

    path = tmp_path / "cxr.png"
    Image.fromarray(IMAGE).save(path)
    return path


# ---------------------------------------------------------------- corrections


@pytest.mark.parametrize("answer", ["yes", "", "No.", "Yes, there is."])
def test_a_failed_correction_keeps_the_report(model, scripted, tmp_path, answer) -> None:
    scripted(DRAFT, answer)
    s = Session(model, IMAGE, repair=False)
    s.report()
    reply = s.respond("/correct +effusion")
    assert reply.text == answer and reply.kind == "correct"  # kept as the reply
    assert reply.correction.replaced is False and reply.correction.report == DRAFT
    assert "the report is unchanged" in reply.correction.summary()
    assert s.current_report == DRAFT and s.original_report == DRAFT
    data = json.loads(s.to_json(tmp_path / "s.json").read_text())
    assert data["report"] == DRAFT and data["original_report"] == DRAFT
    assert data["turns"][-1] == {"role": "assistant", "kind": "correct", "text": answer} | {
        "is_report": False
    }
    md = s.to_markdown(tmp_path / "s.md").read_text()
    assert f"## Report\n\n{DRAFT}" in md


def test_a_correction_that_is_a_report_replaces_it_and_the_original_is_kept(
    model, scripted, tmp_path
) -> None:
    new = "The heart is normal in size. Small right pleural effusion."
    scripted(DRAFT, new)
    s = Session(model, IMAGE, repair=False)
    s.report()
    result = s.correct(add=["effusion"])
    assert result.replaced and result.added == {"Pleural Effusion": True}
    assert s.current_report == new and s.original_report == DRAFT
    data = s.to_dict()
    assert data["report"] == new and data["original_report"] == DRAFT
    md = s.to_markdown(tmp_path / "s.md").read_text()
    assert "## Report before corrections" in md and DRAFT in md


def test_what_counts_as_a_report() -> None:
    assert looks_like_report("No acute cardiopulmonary process.")
    assert looks_like_report("No pneumothorax. Small left pleural effusion.")
    assert not looks_like_report("")
    assert not looks_like_report("yes")
    assert not looks_like_report("Yes, there is an effusion on the left.")
    assert not looks_like_report("I am not sure what you mean by that.")


def test_a_question_answered_with_the_report_gets_a_notice(model, scripted) -> None:
    scripted(DRAFT, DRAFT)
    s = Session(model, IMAGE, repair=False)
    s.report()
    assert s.ask("Is there cardiomegaly?") == DRAFT
    assert any("repeated the report" in n for n in s.notices)
    assert s.turns[-1].is_report is False  # a QA answer is never the report


def test_an_empty_answer_gets_a_notice(model, scripted) -> None:
    scripted(DRAFT, "")
    s = Session(model, IMAGE, repair=False)
    s.report()
    assert s.ask("Write the report") == ""
    assert any("empty answer" in n for n in s.notices)


# ---------------------------------------------------------------- consistency + repair


def test_session_report_is_checked_and_repaired(model, scripted) -> None:
    asked = scripted(DRAFT, REPAIRED)
    s = Session(model, IMAGE)
    assert s.report() == REPAIRED and len(asked) == 2
    assert s.consistency.repaired and s.consistency.original_report == DRAFT
    block = s.report_data["consistency"]
    assert block["repaired"] and block["stated"][0]["label"] == "Cardiomegaly"
    assert len(s.report_data["thresholds"]) == 14
    assert s.to_dict()["consistency"]["original_report"] == DRAFT
    # the dialog continues from the repaired report
    assert s.current_report == REPAIRED
    asked = scripted(DRAFT, REPAIRED)
    s = Session(model, IMAGE, repair=False)
    assert s.report() == DRAFT and len(asked) == 1
    assert not s.consistency.consistent and not s.consistency.repaired


def test_report_cli_json_and_text_show_the_consistency_block(
    model, scripted, image_file, monkeypatch, capsys
) -> None:
    from radialog.commands import report as report_cmd

    monkeypatch.setattr(report_cmd, "load_model", lambda args: model)
    scripted(DRAFT, REPAIRED)
    assert main(["report", str(image_file), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["report"] == REPAIRED
    assert payload["consistency"]["repaired"] and payload["consistency"]["original_report"] == DRAFT
    assert len(payload["thresholds"]) == 14

    asked = scripted(DRAFT, REPAIRED)
    assert main(["report", str(image_file), "--json", "--no-repair"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["report"] == DRAFT and len(asked) == 1
    assert payload["consistency"]["repaired"] is False

    scripted(DRAFT, REPAIRED)
    assert main(["report", str(image_file)]) == 0
    out = capsys.readouterr().out
    assert "Consistency check: report consistent with the findings list (after an automatic" in out
    assert "repaired automatically" in out and DRAFT in out
    threshold = float(model.thresholds[2])  # Cardiomegaly's
    assert f"(threshold {threshold:.2f})" in out
    assert "radiologist" in out


def test_terminal_chat_repair_flag_failed_correction_and_save(
    model, scripted, image_file, tmp_path, monkeypatch, capsys
) -> None:
    from radialog.commands import chat as chat_cmd

    monkeypatch.setattr(chat_cmd, "load_model", lambda args: model)
    saved = tmp_path / "s.json"
    lines = ["/correct +effusion", "/save /nonexistent/dir/x.json", f"/save {saved}", "/quit"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    scripted(DRAFT, REPAIRED, "")
    assert main(["chat", str(image_file)]) == 0
    out = capsys.readouterr().out
    assert "consistency check: report consistent" in out
    assert f"Report after the automatic repair (--no-repair keeps the draft):\n{REPAIRED}" in out
    assert "the model's answer is empty; the report is unchanged" in out
    assert "error: cannot save to /nonexistent/dir/x.json" in out
    assert not __import__("pathlib").Path("/nonexistent").exists()
    data = json.loads(saved.read_text())
    assert data["report"] == REPAIRED and data["original_report"] == REPAIRED
    assert data["consistency"]["original_report"] == DRAFT

    monkeypatch.setattr("sys.stdin", io.StringIO("/quit\n"))
    asked = scripted(DRAFT, REPAIRED)
    assert main(["chat", str(image_file), "--no-repair"]) == 0
    out = capsys.readouterr().out
    assert len(asked) == 1 and "omits Cardiomegaly" in out


# ---------------------------------------------------------------- bounded prompts


def test_a_message_over_the_context_is_refused_naming_the_limit(model, scripted) -> None:
    scripted(DRAFT)
    s = Session(model, IMAGE, repair=False, options=GenerationOptions(max_new_tokens=8))
    s.report()
    n = len(s.turns)
    limit = model.config.llm.max_length
    with pytest.raises(PromptTooLongError, match=f"reads {limit} tokens"):
        s.ask("effusion " * 2000)
    with pytest.raises(PromptTooLongError):
        s.translate("German " * 2000)
    assert len(s.turns) == n  # nothing half-done stays in the history
    assert isinstance(PromptTooLongError("x"), InvalidInputError)  # the CLI prints it


def test_max_context_tokens_never_exceeds_the_model(model) -> None:
    s = Session(model, None, max_context_tokens=10**6, options=GenerationOptions(max_new_tokens=8))
    assert s.context_limit() == model.config.llm.max_length
    assert s.prompt_budget() == model.config.llm.max_length - 8


def test_save_refuses_a_missing_directory(model, scripted, tmp_path) -> None:
    scripted(DRAFT)
    s = Session(model, IMAGE, repair=False)
    s.report()
    with pytest.raises(InvalidInputError, match="does not exist"):
        s.to_json(tmp_path / "missing" / "x.json")
    with pytest.raises(InvalidInputError, match="does not exist"):
        s.to_markdown(tmp_path / "missing" / "x.md")
    assert not (tmp_path / "missing").exists()


def test_demo_shows_the_check_and_honours_no_repair(model, scripted, monkeypatch, capsys) -> None:
    from radialog.commands import demo

    monkeypatch.setattr(demo, "load_model", lambda args: model)
    scripted(DRAFT, REPAIRED, "No effusion.", "")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert f"Report:\n  {REPAIRED}" in out and "repaired automatically" in out
    assert "(note: the model gave an empty answer" in out
    asked = scripted(DRAFT, "No effusion.", "Normal chest.")
    assert main(["demo", "--no-repair"]) == 0
    out = capsys.readouterr().out
    assert f"Report:\n  {DRAFT}" in out and "omits Cardiomegaly" in out and len(asked) == 3


def test_huge_history_costs_little_and_is_dropped_with_a_notice(model, scripted) -> None:
    import time

    scripted(DRAFT, "No effusion.")
    s = Session(model, IMAGE, repair=False, options=GenerationOptions(max_new_tokens=8))
    s.report()
    for i in range(100):  # 4 MB of history sent back by a client
        s.add_exchange(f"Question {i}? " + "lung " * 4000, "The lungs are clear. " * 2000)
    t0 = time.perf_counter()
    assert s.ask("Is there an effusion?") == "No effusion."
    assert time.perf_counter() - t0 < 5
    assert s.dropped_turns == 200
    assert any("200 older turns were left out" in n for n in s.notices)


def test_check_correction_judges_by_the_labeler_alone() -> None:
    """The evaluation passes keys and a lookup of precomputed labels: the report-or-reply
    decision belongs to the session, not to the check."""
    from radialog.chat.correction import check_correction
    from radialog.labeler import label_report

    results = {"before": label_report("No pleural effusion."), "after": label_report("Effusion.")}
    check = check_correction("before", "after", "p", ["Pleural Effusion"], [], results.get)
    assert check.added == {"Pleural Effusion": True} and check.replaced
