"""The embedded default model `radialog-mini`: shipped files, the demo, and a dialog on it."""

from __future__ import annotations

import pytest
import torch

from data_paths import EXAMPLE_IMAGE
from radialog import DISCLAIMER
from radialog.cli import main
from radialog.labels import CHEXPERT_LABELS
from radialog.model.radialog_model import weights_root

MINI = weights_root() / "radialog-mini"


def test_embedded_weights_are_small_and_documented():
    files = [p for p in MINI.rglob("*") if p.is_file()]
    assert (MINI / "config.json").is_file() and (MINI / "model.safetensors").is_file()
    assert (MINI / "adapter" / "adapter_model.safetensors").is_file()
    assert sum(p.stat().st_size for p in files) <= 30 * 1000 * 1000
    card = (MINI / "MODEL_CARD.md").read_text(encoding="utf-8").lower()
    for needed in ("not for clinical use", "phantom", "cc by-nc-nd", "smollm2"):
        assert needed in card


@pytest.fixture(scope="module")
def mini():
    from radialog.model import RadialogModel

    torch.set_num_threads(2)
    model = RadialogModel.from_pretrained("radialog-mini").eval()
    assert model.is_trained, "the embedded default must load its trained weights"
    return model


@pytest.mark.e2e
def test_dialog_on_the_example_image(mini):
    from radialog.chat import GenerationOptions, Session

    session = Session(mini, EXAMPLE_IMAGE, options=GenerationOptions(max_new_tokens=48))
    report = session.report()
    assert report.strip()
    assert list(session.findings) == list(CHEXPERT_LABELS)
    assert session.report_data["disclaimer"] == DISCLAIMER
    answer = session.ask("Is there any Pleural Effusion?")
    assert answer.strip()
    # The follow-up sees the report: the rendered prompt carries both turns in RaDialog's format.
    rendered = session.conversation().render()
    assert (
        f"ASSISTANT: {report}</s>USER: Is there any Pleural Effusion? ASSISTANT: {answer}</s>"
        in rendered
    )


@pytest.mark.e2e
def test_demo_command_prints_report_and_two_answers(capsys):
    assert main(["demo", "--max-new-tokens", "32", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "NOTE: no trained weights" not in out
    assert "generation backend: " in out
    assert "Report:" in out and DISCLAIMER in out
    assert out.count("USER: ") == 2 and out.count("RADIALOG: ") == 2


@pytest.mark.e2e
def test_demo_names_its_backend_and_hints_at_llamacpp_when_missing(capsys, monkeypatch):
    monkeypatch.setattr("radialog.model.llamacpp.llamacpp_available", lambda: False)
    monkeypatch.setattr("radialog.model.radialog_model.llamacpp_available", lambda: False)
    assert main(["demo", "--max-new-tokens", "4", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "generation backend: fast" in out and "make llamacpp" in out
