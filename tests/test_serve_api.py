"""The HTTP API on a real uvicorn server (127.0.0.1, random port) with the tiny random model,
driven by the stock `openai` client and httpx."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import torch

from data_paths import EXAMPLE_IMAGE, SHARED_DATA
from radialog.serve import ServeSettings, create_app
from radialog.serve.background import serve_in_background as live_server

DICOM = SHARED_DATA / "images" / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    return RadialogModel.from_config("tiny")


@pytest.fixture(scope="module")
def png() -> bytes:
    return EXAMPLE_IMAGE.read_bytes()


@pytest.fixture(scope="module")
def server(model) -> Iterator[str]:
    settings = ServeSettings(max_new_tokens=8, max_upload_mb=2, api_key=None)
    with live_server(create_app(model, settings)) as url:
        yield url


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def image_message(data: bytes, text: str = "Write a report for this X-ray.") -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": data_uri(data)}},
        ],
    }


def test_health_models_and_page(server) -> None:
    health = httpx.get(f"{server}/healthz").json()
    assert health["status"] == "ok" and health["backend"] in ("llamacpp", "fast", "hf")
    assert httpx.get(f"{server}/v1/models").json()["data"][0]["id"] == "tiny"
    page = httpx.get(f"{server}/")
    assert page.status_code == 200 and "radiologist" in page.text
    assert httpx.get(f"{server}/static/app.js").status_code == 200


def test_openai_client_report_then_follow_up(server, png) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    first = client.chat.completions.create(
        model="tiny", messages=[image_message(png)], max_tokens=6
    )
    report = first.choices[0].message.content
    assert isinstance(report, str)
    assert (
        first.usage.completion_tokens <= 6 and first.usage.prompt_tokens > 100
    )  # includes image tokens
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    extra = first.model_extra["radialog"]
    assert extra["kind"] == "report" and len(extra["findings"]) == 14
    # the same report through the upload endpoint (one model, greedy: same text)
    up = httpx.post(
        f"{server}/v1/reports",
        files={"file": ("x.png", png, "image/png")},
        params={"max_tokens": 6},
    )
    assert up.status_code == 200 and up.json()["report"] == report

    follow = client.chat.completions.create(
        model="tiny",
        messages=[
            {"role": "system", "content": "ignored: RaDialog uses its own system prompt"},
            image_message(png),
            {"role": "assistant", "content": report},
            {"role": "user", "content": "/correct +effusion -pneumothorax"},
        ],
        max_tokens=6,
    )
    corr = follow.model_extra["radialog"]
    assert corr["kind"] == "correct"
    assert set(corr["correction"]["added"]) == {"Pleural Effusion"}
    assert corr["correction"]["prompt"].startswith(
        "Please adapt the report with the following corrections"
    )


def test_openai_client_streaming_matches_non_streaming(server, png) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "What is a pleural effusion?"}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8)
    stream = client.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == full.choices[0].message.content
    assert finish == full.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_report_upload_shape_and_preview(server, png) -> None:
    r = httpx.post(
        f"{server}/v1/reports",
        files={"file": ("scan.png", png, "image/png")},
        params={"include_image": "true"},
        timeout=60,
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "findings",
        "thresholds",
        "consistency",
        "predicted",
        "report",
        "model",
        "disclaimer",
        "timings",
        "gate",
        "image",
    }
    assert body["gate"]["decision"] == "off"  # the tiny model has no input gate
    assert list(body["findings"])[0] == "No Finding" and len(body["findings"]) == 14
    assert "radiologist" in body["disclaimer"]
    from PIL import Image

    preview = Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1])))
    assert preview.format == "PNG" and preview.mode == "L" and max(preview.size) <= 1024


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"GIF89a\x01\x00\x01\x00", 415, "unsupported_media_type"),
        (b"hello, I am text", 415, "unsupported_media_type"),
        (b"", 400, "empty_image"),
        (None, 422, "invalid_image"),  # truncated PNG
    ],
)
def test_bad_uploads_get_clear_errors(server, png, payload, status, code) -> None:
    data = png[:300] if payload is None else payload
    r = httpx.post(f"{server}/v1/reports", files={"file": ("f", data, "application/octet-stream")})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and err["message"]


def test_size_limits_413(server, png) -> None:
    big = png + b"\0" * (3 * 1024 * 1024)  # over the 2 MiB test limit
    r = httpx.post(f"{server}/v1/reports", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = httpx.post(f"{server}/v1/chat/completions", json={"messages": [image_message(big)]})
    assert r.status_code == 413


def test_chat_request_errors(server, png) -> None:
    def post(body: dict) -> httpx.Response:
        return httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60)

    remote = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://example.org/x.png"}}],
    }
    r = post({"messages": [remote]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "remote_image_url"
    assert "offline" in r.json()["error"]["message"]
    r = post(
        {
            "messages": [
                image_message(png),
                {"role": "assistant", "content": "x"},
                image_message(png),
            ]
        }
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_images"
    r = post(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_message_order"
    bad_b64 = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}],
    }
    assert post({"messages": [bad_b64]}).json()["error"]["code"] == "invalid_base64"
    r = post({"messages": [{"role": "user", "content": "/correct +banana"}]})
    assert r.status_code == 400 and "unknown finding" in r.json()["error"]["message"]
    r = post({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0})
    assert r.status_code == 422 and r.json()["error"]["param"] == "max_tokens"
    r = post({"messages": [{"role": "user", "content": "hi"}], "frequency_penalty": 3})
    assert r.status_code == 422 and r.json()["error"]["param"] == "frequency_penalty"


def test_repetition_penalties_reach_the_model(server, model) -> None:
    from radialog.model.prompt import Conversation

    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    plain = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60).json()
    body["presence_penalty"] = 2.0
    penalised = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60).json()
    expected = model.generate(Conversation().add_user("hi"), max_new_tokens=8, presence_penalty=2.0)
    assert penalised["choices"][0]["message"]["content"] == expected.strip()
    assert (
        penalised["choices"][0]["message"]["content"] != plain["choices"][0]["message"]["content"]
    )


def test_dicom_identifiers_never_in_responses_or_logs(server, caplog) -> None:
    if not DICOM.exists():
        pytest.skip("shared DICOM sample not available")
    import pydicom

    ds = pydicom.dcmread(DICOM)
    ds.PatientName = "Doe^Janet"
    ds.PatientID = "PID-SECRET-4711"
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    caplog.set_level(logging.DEBUG)
    r = httpx.post(
        f"{server}/v1/reports",
        files={"file": ("Doe_Janet_PID-SECRET-4711.dcm", data, "application/dicom")},
        params={"include_image": "true"},
        timeout=60,
    )
    assert r.status_code == 200
    c = httpx.post(
        f"{server}/v1/chat/completions",
        json={"messages": [image_message(data[:-5000])]},  # truncated: an error message path too
        timeout=60,
    )
    assert c.status_code in (200, 422)
    body = r.json()
    preview = base64.b64decode(body.pop("image").split(",", 1)[1])  # base64 may spell anything
    for secret in ("Doe", "Janet", "PID-SECRET-4711"):
        assert secret not in json.dumps(body) and secret not in c.text
        assert secret.encode() not in preview
        assert secret not in caplog.text


def test_api_key_required_when_set(model, png) -> None:
    settings = ServeSettings(max_new_tokens=4, api_key="s3cret")
    with live_server(create_app(model, settings)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200  # health checks need no key
        r = httpx.get(f"{url}/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert (
            httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        assert (
            httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code
            == 200
        )
        assert httpx.get(f"{url}/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        from openai import AuthenticationError, OpenAI

        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()
        ok = OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        out = ok.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
        assert out.choices[0].message.role == "assistant"


@contextmanager
def gated(model) -> Iterator[threading.Event]:
    """Make the real tiny model's generate wait for an event (a slow model, not a fake)."""
    gate = threading.Event()
    original = model.generate

    def slow_generate(*args, **kwargs):
        gate.wait(30)
        return original(*args, **kwargs)

    model.generate = slow_generate
    try:
        yield gate
    finally:
        gate.set()
        del model.generate  # back to the class method


def _wait_busy(url: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while httpx.get(f"{url}/healthz").json()["busy"] < n:
        assert time.monotonic() < deadline, "requests were not admitted"
        time.sleep(0.05)


def test_full_queue_answers_503_with_retry_after(model) -> None:
    settings = ServeSettings(max_new_tokens=4, max_concurrency=1, queue_size=1, timeout_s=60)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with live_server(create_app(model, settings)) as url, gated(model) as gate:
        results: list[httpx.Response] = []

        def call() -> None:
            results.append(httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60))

        workers = [threading.Thread(target=call) for _ in range(2)]
        for w in workers:
            w.start()
        _wait_busy(url, 2)  # one running (held by the gate), one queued
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["code"] == "server_busy"
        s = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=10)
        assert s.status_code == 503  # streaming requests are refused before the stream starts
        gate.set()
        for w in workers:
            w.join(60)
        assert [x.status_code for x in results] == [200, 200]
        assert httpx.get(f"{url}/healthz").json()["busy"] == 0


def test_timeout_answers_504_and_frees_the_slot(model) -> None:
    settings = ServeSettings(max_new_tokens=4, max_concurrency=1, queue_size=0, timeout_s=0.5)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with live_server(create_app(model, settings)) as url, gated(model) as gate:
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        gate.set()
        deadline = time.monotonic() + 20
        while httpx.get(f"{url}/healthz").json()["busy"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        settings.timeout_s = 60
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200


def test_concurrent_conversations_do_not_share_history(model, png) -> None:
    settings = ServeSettings(max_new_tokens=4, max_concurrency=2, queue_size=4)
    with live_server(create_app(model, settings)) as url:
        convs = {
            "a": [{"role": "user", "content": "What is an effusion?"}],
            "b": [
                {"role": "user", "content": "Translate nothing."},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "/summary"},
            ],
        }
        alone = {
            k: httpx.post(f"{url}/v1/chat/completions", json={"messages": v}, timeout=60).json()
            for k, v in convs.items()
        }
        together: dict[str, dict] = {}

        def call(k: str) -> None:
            together[k] = httpx.post(
                f"{url}/v1/chat/completions", json={"messages": convs[k]}, timeout=60
            ).json()

        threads = [threading.Thread(target=call, args=(k,)) for k in ("a", "b", "a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for k in convs:
            assert together[k]["choices"][0]["message"] == alone[k]["choices"][0]["message"]
            assert together[k]["usage"]["prompt_tokens"] == alone[k]["usage"]["prompt_tokens"]
