"""The HTTP API under real conditions (issue 14) on a real uvicorn server with the tiny model:
the report's consistency block, failed corrections that keep the report, prompts bounded by
the model's context, a pixel budget checked before decoding, prompt cancellation after a
timeout, and clear answers to the small mistakes clients make."""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest
import torch

from data_paths import EXAMPLE_IMAGE, SHARED_DATA
from radialog.serve import ServeSettings, create_app
from radialog.serve.background import serve_in_background as live_server

DICOM = SHARED_DATA / "images" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
DRAFT = "The heart is normal in size. The lungs are clear."
REPAIRED = "The heart is enlarged. The lungs are clear."


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    m = RadialogModel.from_config("tiny")
    m.predicted_labels = lambda probs: ["Cardiomegaly"]  # a fixed findings list
    return m


@pytest.fixture(scope="module")
def png() -> bytes:
    return EXAMPLE_IMAGE.read_bytes()


@pytest.fixture(scope="module")
def server(model) -> Iterator[str]:
    settings = ServeSettings(max_new_tokens=8, max_upload_mb=2, api_key=None)
    with live_server(create_app(model, settings)) as url:
        yield url


@pytest.fixture()
def scripted(model, monkeypatch):
    """The LLM's replies, in order (what the server does with them is under test)."""

    def script(*answers: str) -> list[str]:
        calls: list[str] = []
        replies = iter(answers)

        def generate(conversation, image_tokens=None, streamer=None, **kwargs):
            calls.append(conversation.messages[-1].text)
            answer = next(replies)
            if streamer is not None:  # as the real decoders do: the prompt, then each token
                streamer.put(torch.tensor([[0]]))
                for token in model.codec.encode(answer, add_prefix=False):
                    streamer.put(torch.tensor([token]))
                streamer.end()
            return answer

        monkeypatch.setattr(model, "generate", generate)
        return calls

    return script


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def image_message(data: bytes, text: str = "Write a report for this X-ray.") -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": data_uri(data)}},
        ],
    }


def chat(url: str, body: dict, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout)


# ---------------------------------------------------------------- the consistency block


def test_report_endpoint_carries_the_consistency_block(server, png, scripted) -> None:
    calls = scripted(DRAFT, REPAIRED)
    # "image" is accepted as well as "file" (the common field names)
    r = httpx.post(f"{server}/v1/reports", files={"image": ("x.png", png)}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["report"] == REPAIRED and len(calls) == 2  # draft + one repair turn
    c = body["consistency"]
    assert c["repaired"] is True and c["consistent"] is True
    assert c["original_report"] == DRAFT
    assert c["listed"] == ["Cardiomegaly"]
    assert c["stated"] == [{"label": "Cardiomegaly", "evidence": ["The heart is enlarged."]}]
    assert set(body["thresholds"]) == set(body["findings"]) and len(body["thresholds"]) == 14
    assert "radiologist" in body["disclaimer"]


@pytest.mark.parametrize("how", ["form", "query"])
def test_report_endpoint_repair_can_be_turned_off(server, png, scripted, how) -> None:
    calls = scripted(DRAFT, REPAIRED)
    r = httpx.post(
        f"{server}/v1/reports",
        files={"file": ("x.png", png)},
        data={"repair": "false"} if how == "form" else None,
        params={"repair": "false"} if how == "query" else None,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["report"] == DRAFT and len(calls) == 1  # no repair turn
    c = body["consistency"]
    assert c["repaired"] is False and c["consistent"] is False
    assert [s["label"] for s in c["omitted"]] == ["Cardiomegaly"]


def test_chat_report_carries_the_consistency_block(server, png, scripted) -> None:
    scripted(DRAFT, REPAIRED)
    r = chat(server, {"messages": [image_message(png)]})
    assert r.status_code == 200, r.text
    extra = r.json()["radialog"]
    assert r.json()["choices"][0]["message"]["content"] == REPAIRED
    assert extra["consistency"]["repaired"] and extra["consistency"]["original_report"] == DRAFT
    assert extra["report"] == REPAIRED and len(extra["thresholds"]) == 14
    calls = scripted(DRAFT, REPAIRED)
    r = chat(server, {"messages": [image_message(png)], "repair": False})
    assert r.json()["choices"][0]["message"]["content"] == DRAFT and len(calls) == 1
    assert r.json()["radialog"]["consistency"]["repaired"] is False


def test_a_streamed_report_is_the_checked_one(server, png, scripted) -> None:
    """With repair on, the streamed content is the final (repaired) report, never a draft
    that was replaced afterwards."""
    import json

    scripted(DRAFT, REPAIRED)
    with httpx.stream(
        "POST",
        f"{server}/v1/chat/completions",
        json={"messages": [image_message(png)], "stream": True},
        timeout=60,
    ) as r:
        events = [
            json.loads(line[6:])
            for line in r.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
    content = "".join(c["delta"].get("content") or "" for e in events for c in e.get("choices", []))
    assert content == REPAIRED
    assert events[-1]["radialog"]["consistency"]["original_report"] == DRAFT


# ---------------------------------------------------------------- corrections


@pytest.mark.parametrize("answer", ["yes", "", "No."])
def test_a_failed_correction_never_replaces_the_report(server, png, scripted, answer) -> None:
    scripted(answer)
    messages = [
        image_message(png),
        {"role": "assistant", "content": DRAFT},
        {"role": "user", "content": "/correct +effusion"},
    ]
    r = chat(server, {"messages": messages})
    assert r.status_code == 200, r.text
    extra = r.json()["radialog"]
    assert r.json()["choices"][0]["message"]["content"] == answer  # kept as the reply
    assert extra["kind"] == "correct"
    assert extra["correction"]["replaced"] is False and extra["correction"]["report"] == DRAFT
    assert extra["correction"]["added"] == {"Pleural Effusion": False}
    assert extra["report"] == DRAFT and extra["original_report"] == DRAFT
    # the failed answer sent back as history is not taken for the report either
    scripted("It is a moderate effusion.")
    later = messages + [
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "How large is it?"},
    ]
    assert chat(server, {"messages": later}).json()["radialog"]["report"] == DRAFT


def test_a_real_correction_replaces_the_report_and_keeps_the_original(
    server, png, scripted
) -> None:
    new = "The heart is normal in size. Small right pleural effusion."
    scripted(new)
    messages = [
        image_message(png),
        {"role": "assistant", "content": DRAFT},
        {"role": "user", "content": "/correct +effusion"},
    ]
    extra = chat(server, {"messages": messages}).json()["radialog"]
    assert extra["correction"]["replaced"] is True
    assert extra["correction"]["added"] == {"Pleural Effusion": True}
    assert extra["report"] == new and extra["original_report"] == DRAFT


# ---------------------------------------------------------------- bounded prompts


def test_a_message_over_the_context_gets_400_naming_the_limit(server, model) -> None:
    limit = model.config.llm.max_length
    huge = "effusion " * 25_000  # 200,000 characters
    for stream in (False, True):
        r = chat(server, {"messages": [{"role": "user", "content": huge}], "stream": stream})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "context_length_exceeded" and f"{limit} tokens" in err["message"]
    r = chat(server, {"messages": [{"role": "user", "content": "/translate " + "x" * 200_000}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_a_message_that_fits_only_without_the_report_gets_400(server, png, model) -> None:
    from radialog.chat.session import count_tokens

    limit = model.config.llm.max_length
    text = "Is there an effusion? " * 80
    assert count_tokens(model, text, prefix=False) < limit - 8  # alone it would fit
    messages = [image_message(png), {"role": "assistant", "content": DRAFT * 3}]
    r = chat(server, {"messages": [*messages, {"role": "user", "content": text}]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "context_length_exceeded"
    assert f"reads {limit} tokens" in r.json()["error"]["message"]


def test_history_that_does_not_fit_is_dropped_with_a_notice(server, png, scripted) -> None:
    scripted("No effusion.")
    turns = [image_message(png), {"role": "assistant", "content": DRAFT}]
    for i in range(12):
        turns += [
            {"role": "user", "content": f"Question {i}: describe the lung bases in detail " * 3},
            {"role": "assistant", "content": "The lung bases are clear without effusion. " * 3},
        ]
    turns.append({"role": "user", "content": "Is there an effusion?"})
    r = chat(server, {"messages": turns})
    assert r.status_code == 200, r.text
    extra = r.json()["radialog"]
    assert extra["dropped_turns"] > 0
    assert any("left out" in n for n in extra["notices"])


# ---------------------------------------------------------------- pixel budget


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a few bytes of (bogus) image data:
    decoding it would fail (422); the pixel check must answer first."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_pixel_budget_answers_413_before_decoding(server, png) -> None:
    bomb = _png_header_only(20_000, 20_000)
    t0 = time.perf_counter()
    r = httpx.post(f"{server}/v1/reports", files={"file": ("b.png", bomb)}, timeout=60)
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "image_too_many_pixels" and "20000 x 20000" in err["message"]
    assert "25 megapixels" in err["message"]
    assert time.perf_counter() - t0 < 5
    r = chat(server, {"messages": [image_message(bomb)]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_many_pixels"
    # the largest real chest X-rays pass the default budget (header only: same answer path)
    ok = _png_header_only(4_300, 3_500)
    r = httpx.post(f"{server}/v1/reports", files={"file": ("ok.png", ok)}, timeout=60)
    assert r.status_code == 422  # not refused for its size: decoding found the bogus data


def test_pixel_budget_is_configurable_for_png_jpeg_and_dicom(model, png) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (300, 200)).save(buf, "JPEG")
    samples = {"png": png, "jpeg": buf.getvalue()}
    if DICOM.exists():
        samples["dicom"] = DICOM.read_bytes()
    settings = ServeSettings(max_new_tokens=2, max_pixels=50_000, api_key=None)
    with live_server(create_app(model, settings)) as url:
        for name, data in samples.items():
            r = httpx.post(f"{url}/v1/reports", files={"file": (name, data)}, timeout=60)
            assert r.status_code == 413, (name, r.text)
            assert "0.05 megapixels" in r.json()["error"]["message"]


# ---------------------------------------------------------------- timeout


def test_generation_stops_promptly_after_a_timeout(model, png, monkeypatch) -> None:
    """After a 504 the worker must be free again at once, also when the generation that
    runs is one the client never sees (the report behind a question about the image)."""
    from transformers.generation.streamers import BaseStreamer

    original = type(model).generate
    generated: list[int] = []

    class Slow(BaseStreamer):  # what a slow CPU looks like: 50 ms per token
        def __init__(self, inner):
            self.inner = inner

        def put(self, value):
            time.sleep(0.05)
            generated.append(1)
            if self.inner is not None:
                self.inner.put(value)

        def end(self):
            if self.inner is not None:
                self.inner.end()

    def slow_generate(conversation, image_tokens=None, **kwargs):
        kwargs["streamer"] = Slow(kwargs.get("streamer"))
        return original(model, conversation, image_tokens, **kwargs)

    monkeypatch.setattr(model, "generate", slow_generate)
    settings = ServeSettings(max_new_tokens=200, timeout_s=1.0, queue_size=0, api_key=None)
    with live_server(create_app(model, settings)) as url:
        r = chat(url, {"messages": [image_message(png, "Is the heart enlarged?")]})
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        t0 = time.monotonic()
        while httpx.get(f"{url}/healthz").json()["busy"]:
            assert time.monotonic() - t0 < 1.5, "the worker kept generating after the 504"
            time.sleep(0.02)
        assert len(generated) < 60  # 200 tokens would have taken 10 s


# ---------------------------------------------------------------- small mistakes


def test_small_client_mistakes_get_clear_answers(server, png) -> None:
    r = httpx.post(
        f"{server}/v1/chat/completions",
        content=b'{"messages": [{"role": "user", "content": "hi"},]}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_json" and "not valid JSON" in err["message"]
    assert "character" in err["message"]

    r = chat(server, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err == {
        "message": err["message"],
        "type": "invalid_request_error",
        "code": "model_not_found",
        "param": "model",
    }
    assert "gpt-4o" in err["message"] and "tiny" in err["message"]
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    r = httpx.post(f"{server}/v1/reports", files={"upload": ("x.png", png)}, timeout=60)
    assert r.status_code == 422 and "'file'" in r.json()["error"]["message"]
