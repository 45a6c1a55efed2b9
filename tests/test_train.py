"""Training stages on the tiny config: loss goes down, resume is exact, thresholds, layout.

Images are small synthetic radiograph-like pictures whose content follows the labels (a large
bright heart for Cardiomegaly, a bright lower band for Pleural Effusion), so a few steps suffice
to learn something.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radialog.data.study import Study, StudyImage
from radialog.errors import InvalidInputError, ModelNotFoundError
from radialog.labels import CHEXPERT_LABELS
from radialog.model.prompt import report_prompt
from radialog.train import STAGES, latest_checkpoint, load_train_config, train_stage
from radialog.train.config import config_from_dict
from radialog.train.data import label_targets, log_class_weights, read_instruct_jsonl
from radialog.train.thresholds import classification_metrics, tune_thresholds

torch.set_num_threads(1)


def _study(root: Path, name: str, i: int, rng: np.random.Generator) -> Study:
    card, eff = bool(i % 2), bool((i // 2) % 2)
    img = rng.normal(60, 10, (80, 80))
    yy, xx = np.mgrid[:80, :80]
    radius = 22 if card else 10
    img[(yy - 40) ** 2 + (xx - 40) ** 2 < radius**2] += 120
    if eff:
        img[60:, :] += 90
    path = root / f"{name}{i}.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    labels = dict.fromkeys(CHEXPERT_LABELS, 0)
    labels["Cardiomegaly"], labels["Pleural Effusion"] = int(card), int(eff)
    labels["No Finding"] = int(not (card or eff))
    text = ("The heart is enlarged. " if card else "Heart size is normal. ") + (
        "There is a pleural effusion." if eff else "No effusion."
    )
    return Study(f"{name}{i}", [StudyImage(path, "PA")], findings=text, labels=labels, split=name)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, list[Study]]:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    return {s: [_study(root, s, i, rng) for i in range(n)] for s, n in [("train", 16), ("val", 8)]}


def _config(stage: str, **stage_kw):
    raw = json.loads(Path(load_train_config("tiny").source).read_text())
    raw["stages"][stage].update(stage_kw)
    return config_from_dict(raw)


def _losses(out: Path, metric: str = "loss", split: str = "train") -> list[float]:
    with (out / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split and r["metric"] == metric]
    return [float(r["value"]) for r in rows]


def _instruct_jsonl(studies: list[Study], path: Path) -> Path:
    with path.open("w") as f:
        for s in studies:
            positives = [k for k, v in s.labels.items() if v == 1]
            conv = [
                {"from": "human", "value": report_prompt(positives)},
                {"from": "gpt", "value": s.findings},
            ]
            rec = {"id": s.id, "image": str(s.images[0].path), "conversations": conv}
            f.write(json.dumps(rec) + "\n")
            follow = conv + [
                {"from": "human", "value": "Is there any Cardiomegaly?"},
                {"from": "gpt", "value": "yes" if s.labels["Cardiomegaly"] else "no"},
            ]
            f.write(json.dumps({**rec, "id": s.id + "-qa", "conversations": follow}) + "\n")
    return path


# ------------------------------------------------------------------ pure functions


def test_named_configs_load_and_typos_fail(tmp_path):
    for name in ("tiny", "radialog-mini", "radialog-v2"):
        cfg = load_train_config(name)
        assert set(cfg.stages) <= set(STAGES)
    v2 = load_train_config("radialog-v2").stage("instruct")
    assert (v2.lr, v2.batch_size * v2.grad_accum, v2.max_grad_norm) == (2e-5, 128, 0.1)
    with pytest.raises(ModelNotFoundError):
        load_train_config("no-such-config")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "tiny", "stages": {"classifier": {"lr": 1, "lrr": 2}}}))
    with pytest.raises(InvalidInputError, match="lrr"):
        load_train_config(bad)


def test_threshold_tuning_maximises_f1_per_label():
    probs = np.array([[0.9, 0.2], [0.8, 0.3], [0.35, 0.1], [0.3, 0.6], [0.1, 0.05]])
    y = np.array([[1, 0], [1, 0], [1, 0], [0, 0], [0, 0]])
    thr = tune_thresholds(probs, y, min_positives=1)
    # label 0: all three positives are above 0.35 and the best negative is 0.3 -> F1 = 1
    assert 0.3 < thr[0] < 0.35
    assert classification_metrics(probs, y, thr)["f1/no_finding"] == 1.0
    assert classification_metrics(probs, y, 0.5)["f1/no_finding"] < 1.0
    assert thr[1] == 0.5  # no positives: keeps the default
    best = classification_metrics(probs, y, thr)["f1/no_finding"]
    for t in np.linspace(0, 1, 21):  # no other threshold does better
        assert classification_metrics(probs, y, np.array([t, 0.5]))["f1/no_finding"] <= best


def test_threshold_tuning_keeps_default_for_rare_or_inseparable_labels():
    rng = np.random.default_rng(0)
    probs = rng.random((200, 3))
    y = np.zeros((200, 3))
    y[:5, 0] = 1  # rare: 5 positives
    y[:, 1] = probs[:, 1] > 0.2  # well separated, plenty of positives
    y[::2, 2] = 1  # noise: the classifier cannot separate it
    probs[:, 2] = rng.random(200) * 0.3
    thr = tune_thresholds(probs, y, min_positives=10, min_f1=0.7)
    assert thr[0] == 0.5
    assert abs(thr[1] - 0.2) < 0.02
    assert thr[2] == 0.5


def test_log_class_weights_guard_zero_and_full_counts():
    targets = torch.tensor([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=torch.float32)
    w = log_class_weights(targets)
    assert torch.isclose(w[0], torch.log(torch.tensor(4.0)))  # log(N / count)
    assert w[1] == 1.0  # never positive: neutral instead of log(N/0) = inf
    assert w[2] == pytest.approx(0.1)  # always positive: floor instead of log(1) = 0


def test_instruct_reader_rejects_bad_records(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"image": null, "conversations": [{"from": "human", "value": "hi"}]}\n')
    with pytest.raises(InvalidInputError, match="last turn"):
        read_instruct_jsonl(p)
    p.write_text('{"conversations": "nope"}\n')
    with pytest.raises(InvalidInputError, match=":1:"):
        read_instruct_jsonl(p)


# ------------------------------------------------------------------ stages


def test_classifier_stage_learns_tunes_thresholds_and_writes_layout(data, tmp_path):
    from radialog.model import RadialogModel

    cfg = _config("classifier", epochs=5, eval_every=2, save_every=4, keep_checkpoints=2)
    out = tmp_path / "cls"
    result = train_stage("classifier", cfg, out, data=data, show_progress=False)
    losses = _losses(out)
    assert result.steps == 10 and len(losses) == 10
    assert np.mean(losses[-3:]) < np.mean(losses[:3])

    # layout: resumable checkpoints (newest two), best + final model, metrics, TensorBoard
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-0000008", "step-0000010"]
    assert latest_checkpoint(out).name == "step-0000010"
    for f in ("trainer_state.json", "model.safetensors", "optimizer.bin", "random_states_0.pkl"):
        assert (out / "checkpoints" / "step-0000010" / f).is_file()
    for d in ("model", "best"):
        assert (out / d / "config.json").is_file() and (out / d / "model.safetensors").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert {"macro_f1", "macro_auroc"} <= set(result.eval)
    assert result.extra["best_step"] in (2, 4, 6, 8, 10)

    # thresholds tuned on val are saved with the model and beat 0.5 on val F1
    metrics = json.loads((out / "classifier_metrics.json").read_text())
    assert metrics["val_tuned"]["macro_f1"] >= metrics["val_at_0.5"]["macro_f1"]
    reloaded = RadialogModel.from_pretrained(out / "model")
    assert reloaded.is_trained
    saved = [metrics["thresholds"][name] for name in CHEXPERT_LABELS]
    assert reloaded.thresholds.tolist() == pytest.approx(saved)
    assert reloaded.thresholds[CHEXPERT_LABELS.index("Cardiomegaly")] != 0.5
    # the frozen LLM is not in the checkpoints (only trainable parts and buffers)
    from safetensors import safe_open

    with safe_open(str(out / "checkpoints" / "step-0000010" / "model.safetensors"), "pt") as f:
        assert not [k for k in f.keys() if "llm" in k and "lora" not in k]


def test_classifier_stage_with_its_own_encoder_leaves_the_image_tokens(data, tmp_path):
    """separate_encoder: the classifier of a shared-encoder model is trained on a copy of the
    encoder; the report branch's image tokens stay bit for bit."""
    import torch

    from radialog.model import RadialogModel

    shared = tmp_path / "shared"
    cfg = _config("classifier", epochs=1, eval_every=100)
    raw = json.loads(Path(load_train_config("tiny").source).read_text())
    model = RadialogModel.from_config(raw["model"])
    model.config.classifier.shared_encoder = True
    model.classifier_encoder = None
    model.save_pretrained(shared)
    before = RadialogModel.from_pretrained(shared)
    cfg.stages["classifier"].options["separate_encoder"] = True
    out = tmp_path / "cls"
    train_stage("classifier", cfg, out, data=data, show_progress=False, init=shared)
    after = RadialogModel.from_pretrained(out / "model")
    assert not after.config.classifier.shared_encoder and after.classifier_encoder is not None
    pixels = torch.rand(2, 3, *[after.config.encoder.crop] * 2)
    with torch.no_grad():
        assert torch.equal(before.encode_image(pixels), after.encode_image(pixels))
        moved = [
            not torch.equal(a, b)
            for a, b in zip(
                before.encoder.parameters(), after.classifier_encoder.parameters(), strict=True
            )
        ]
    assert any(moved)


def test_align_stage_itc_itm_lm_losses_go_down(data, tmp_path):
    cfg = _config("align", epochs=6, lr=3e-3, batch_size=8, train_limit=8, eval_every=100)
    out = tmp_path / "align"
    train_stage("align", cfg, out, data=data, show_progress=False)
    for metric in ("loss", "loss_itc", "loss_lm"):
        values = _losses(out, metric)
        assert len(values) == 6 and "loss_itm" in {r for r in _metric_names(out)}
        assert np.mean(values[-2:]) < np.mean(values[:2]), metric
    assert (out / "align_heads.safetensors").is_file()


def _metric_names(out: Path) -> set[str]:
    with (out / "metrics.csv").open() as f:
        return {r["metric"] for r in csv.DictReader(f)}


def test_instruct_stage_trains_lora_and_adapter_only(data, tmp_path):
    from radialog.model import RadialogModel

    jsonl = _instruct_jsonl(data["train"][:4] + data["val"][:2], tmp_path / "ins.jsonl")
    cfg = _config("instruct", epochs=4, lr=1e-2, batch_size=4, train_limit=4, eval_every=100)
    cfg.stages["instruct"].options["data"] = str(jsonl)
    cfg.stages["instruct"].options["val_size"] = 2
    out = tmp_path / "ins"
    before = RadialogModel.from_config("tiny")
    train_stage("instruct", cfg, out, data=data, show_progress=False)
    losses = _losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0]
    after = RadialogModel.from_pretrained(out / "model")
    assert torch.equal(after.encoder.stem[0][0].weight, before.encoder.stem[0][0].weight)
    assert not torch.equal(after.adapter.proj.weight, before.adapter.proj.weight)
    lora_b = [p for n, p in after.llm.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero
    assert json.loads((out / "model" / "config.json").read_text())["llm"]["max_length"] == 512


def test_resume_after_kill_reaches_identical_weights(data, tmp_path):
    # align without the LM: fast, and it uses dropout and multinomial sampling (global RNG),
    # augmentation (per-sample RNG), gradient accumulation and a warm-up schedule.
    kw = dict(
        epochs=4,
        batch_size=4,
        grad_accum=2,
        save_every=2,
        eval_every=3,
        warmup_ratio=0.3,
        scheduler="cosine",
        train_limit=12,
    )
    cfg = _config("align", **kw)
    cfg.stages["align"].options.update(lm_weight=0.0, augment=True)

    full = train_stage("align", cfg, tmp_path / "full", data=data, show_progress=False)

    class Killed(Exception):
        pass

    def kill_at_5(state, loss):
        if state.step == 5:
            raise Killed

    out = tmp_path / "killed"
    with pytest.raises(Killed):
        train_stage("align", cfg, out, data=data, show_progress=False, callbacks=[kill_at_5])
    assert latest_checkpoint(out).name == "step-0000004"
    resumed = train_stage("align", cfg, out, resume=True, data=data, show_progress=False)

    assert resumed.steps == full.steps == 6
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(out / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha = load_file(str(tmp_path / "full" / "align_heads.safetensors"))
    hb = load_file(str(out / "align_heads.safetensors"))
    assert all(torch.equal(ha[k], hb[k]) for k in ha)
    # the metrics file reads as one run: each step once, same values
    assert _losses(out) == pytest.approx(_losses(tmp_path / "full"), rel=1e-6)


def test_cli_train_on_a_custom_csv_dataset(data, tmp_path, capsys):
    from radialog.cli import main

    csv_path = tmp_path / "studies.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "findings", "split", *CHEXPERT_LABELS])
        for split in ("train", "val"):
            for s in data[split]:
                w.writerow(
                    [
                        s.id,
                        s.images[0].path,
                        s.findings,
                        split,
                        *[s.labels[n] for n in CHEXPERT_LABELS],
                    ]
                )
    raw = json.loads(Path(load_train_config("tiny").source).read_text())
    raw.update(dataset="custom", dataset_options={"path": str(csv_path)})
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(raw))
    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "classifier",
            "--config",
            str(cfg_path),
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 2 and (out / "model" / "model.safetensors").is_file()
    assert label_targets(data["train"]).sum() > 0
    # --resume on a finished run continues from its last checkpoint and does nothing more
    assert (
        main(
            [
                "train",
                "classifier",
                "--config",
                str(cfg_path),
                "--out",
                str(out),
                "--max-steps",
                "2",
                "--resume",
                "--no-progress",
            ]
        )
        == 0
    )
    # a user error is reported without a traceback
    assert (
        main(
            [
                "train",
                "instruct",
                "--config",
                str(cfg_path),
                "--out",
                str(tmp_path / "x"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "build-instruct" in capsys.readouterr().err
