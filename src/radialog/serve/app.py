"""The HTTP API and web page: `create_app(model, settings) -> FastAPI`.

Endpoints (see /docs for the schema):
- `POST /v1/chat/completions`: OpenAI chat format, optional SSE streaming; the mapping of
  messages onto RaDialog's dialog is described in `radialog.serve.chat_api`.
- `POST /v1/reports`: multipart upload of one PNG/JPEG/DICOM in the form field `file` (or
  `image`) -> the `radialog report --json` object, consistency check included (+ `image`,
  the preprocessed PNG, with `include_image=true`; `repair=false` keeps the first draft).
- Every image passes the model's input gate (`radialog.gate`) before any model work: one
  that is not a chest X-ray gets 422 `not_a_chest_xray` unless the request says `force`.
- `GET /v1/models`, `GET /healthz`, and the web page at `/`.

Model calls run in worker threads behind `ModelRunner` (bounded concurrency + queue, 503
when full, 504 after the timeout). Requests are stateless. Nothing from a request body (no
image, no text, no upload file name) is logged; DICOM headers are never read into
responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from radialog import DISCLAIMER, __version__
from radialog.chat.session import PromptTooLongError, Session
from radialog.chat.streaming import GenerationCancelled, TextDeltaStreamer
from radialog.errors import RadialogError
from radialog.model.generation import GenerationOptions
from radialog.serve import images
from radialog.serve.chat_api import (
    ChatOutcome,
    ParsedChat,
    check_message_length,
    options_for,
    parse_messages,
    run_chat,
)
from radialog.serve.errors import ApiError, error_body
from radialog.serve.limits import BodySizeLimitMiddleware, CancelToken, ModelRunner
from radialog.serve.schemas import (
    MAX_TOKENS_LIMIT,
    ChatCompletion,
    ChatCompletionRequest,
    ErrorResponse,
    Health,
    ModelCard,
    ModelList,
    ReportResponse,
)
from radialog.serve.settings import ServeSettings

log = logging.getLogger(__name__)

_ERR = {"model": ErrorResponse}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        **_ERR,
        "description": "invalid request (message order, bad data URI, bad command, message "
        "longer than the model's context: code context_length_exceeded)",
    },
    401: {**_ERR, "description": "missing or wrong API key (when the server has one)"},
    404: {**_ERR, "description": "unknown model (code model_not_found)"},
    413: {**_ERR, "description": "image (bytes or pixels) or request body over the limit"},
    415: {**_ERR, "description": "not a PNG, JPEG or DICOM image"},
    422: {
        **_ERR,
        "description": "malformed request, unreadable (corrupt) image, or an image the input "
        "gate refuses as not a chest X-ray (code not_a_chest_xray; force=true overrides)",
    },
    503: {
        **_ERR,
        "description": "server busy: queue full; see Retry-After",
        "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
    },
    504: {**_ERR, "description": "the request took longer than the server's timeout"},
}


def create_app(model: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app serving `model` (a loaded `RadialogModel`)."""
    settings = settings or ServeSettings()
    model_name = settings.model_name or str(getattr(model, "name", "radialog"))
    runner = ModelRunner(settings.max_concurrency, settings.queue_size)
    created = int(time.time())
    resolve = getattr(model, "resolve_backend", None)
    backend = resolve(None) if resolve is not None else "hf"

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        runner.shutdown()

    app = FastAPI(
        title="radialog",
        version=__version__,
        description="Chest X-ray reports and dialog (RaDialog design), OpenAI-compatible. "
        + DISCLAIMER,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runner = runner
    app.state.model = model
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)

    async def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        given = given or request.headers.get("x-api-key")
        if not given or not secrets.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>' (or X-API-Key)",
                "invalid_api_key",
            )

    auth = [Depends(require_key)]

    # ------------------------------------------------------------------ plain endpoints

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        return Health(
            status="ok",
            model=model_name,
            busy=runner.admitted,
            capacity=runner.capacity,
            backend=backend,
        )

    @app.get(
        "/v1/models",
        response_model=ModelList,
        dependencies=auth,
        tags=["openai"],
        responses={401: ERROR_RESPONSES[401]},
    )
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=model_name, created=created)])

    # ------------------------------------------------------------------ reports

    @app.post(
        "/v1/reports",
        response_model=ReportResponse,
        dependencies=auth,
        tags=["radialog"],
        responses={k: v for k, v in ERROR_RESPONSES.items() if k != 400}
        | {400: ERROR_RESPONSES[400]},
    )
    async def create_report(
        file: UploadFile | None = File(  # noqa: B008
            None, description="chest X-ray: PNG, JPEG or DICOM (the form field `file`)"
        ),
        image: UploadFile | None = File(  # noqa: B008
            None, description="the same, under the other common field name `image`"
        ),
        include_image: bool = Query(False, description="add the preprocessed PNG as a data URI"),
        max_tokens: int | None = Query(None, ge=1, le=MAX_TOKENS_LIMIT),
        repair: bool | None = Query(
            None,
            description="repair a report that disagrees with its findings list (default: the "
            "server's setting); also accepted as a form field",
        ),
        repair_field: bool | None = Form(None, alias="repair", include_in_schema=False),
        force: bool | None = Query(
            None,
            description="run the model even when the input gate refuses the image as not a "
            "chest X-ray (422 not_a_chest_xray otherwise); the response's `gate` records the "
            "override. Also accepted as a form field",
        ),
        force_field: bool | None = Form(None, alias="force", include_in_schema=False),
    ) -> ReportResponse:
        uploads = [u for u in (file, image) if u is not None]
        if len(uploads) != 1:
            raise ApiError(
                422,
                "send exactly one X-ray as a multipart/form-data file field named 'file' "
                "(or 'image'), e.g. curl -F file=@chest.png .../v1/reports",
                "missing_file" if not uploads else "too_many_files",
                "file",
            )
        upload = uploads[0]
        param = "file" if upload is file else "image"
        data = await upload.read()
        await upload.close()
        if len(data) > settings.max_upload_bytes:
            raise ApiError(
                413, images.too_big_message(settings.max_upload_bytes), "image_too_large", param
            )
        xray = await asyncio.to_thread(
            images.load_image, data, param=param, max_pixels=settings.max_pixels
        )
        do_force = bool(force or force_field)
        gate = await asyncio.to_thread(
            _screen, model, xray, do_force, param, "force=true (query or form field)"
        )
        options = GenerationOptions(
            max_new_tokens=min(max_tokens or settings.max_new_tokens, settings.max_new_tokens)
        )
        token = CancelToken()
        do_repair = next((r for r in (repair, repair_field) if r is not None), settings.repair)

        def work() -> dict[str, Any]:
            session = Session(
                model,
                xray,
                options=options,
                repair=do_repair,
                should_stop=lambda: token.cancelled,
                gate=gate,
            )
            streamer = TextDeltaStreamer(model.codec, lambda _t: None, lambda: token.cancelled)
            session.report(streamer)
            out = dict(session.report_data or {})
            if include_image:
                out["image"] = images.png_data_uri(images.preview_png(xray))
            return out

        out = await _run(runner, work, settings, token)
        return ReportResponse(**out)

    # ------------------------------------------------------------------ chat completions

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        dependencies=auth,
        tags=["openai"],
        responses={
            200: {
                "description": "the answer; with stream=true, server-sent events of "
                "chat.completion.chunk objects ending with `data: [DONE]`",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **ERROR_RESPONSES,
        },
    )
    async def chat_completions(req: ChatCompletionRequest) -> Any:
        if req.model is not None and req.model not in (model_name, "radialog"):
            raise ApiError(
                404,
                f"The model `{req.model}` does not exist: this server runs `{model_name}` "
                "(GET /v1/models lists it)",
                "model_not_found",
                "model",
                type="invalid_request_error",
            )
        chat = parse_messages(req)
        options = options_for(req, settings.max_new_tokens, settings.max_new_tokens)
        limit = int(model.config.llm.max_length)
        if settings.max_context_tokens is not None:
            limit = min(limit, settings.max_context_tokens)
        await asyncio.to_thread(check_message_length, model, chat, options, limit)
        xray = gate = None
        if chat.image_url is not None:
            data = images.decode_image_url(
                chat.image_url,
                max_bytes=settings.max_upload_bytes,
                param=chat.image_param or "image_url",
            )
            xray = await asyncio.to_thread(
                images.load_image,
                data,
                param=chat.image_param or "image_url",
                max_pixels=settings.max_pixels,
            )
            gate = await asyncio.to_thread(
                _screen,
                model,
                xray,
                bool(req.force),
                chat.image_param or "image_url",
                '"force": true in the request',
            )
        repair = settings.repair if req.repair is None else req.repair
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return _stream_chat(
                runner,
                settings,
                model,
                chat,
                xray,
                options,
                completion_id,
                model_name,
                include_usage,
                repair,
                gate,
            )
        token = CancelToken()
        work = _chat_work(model, chat, xray, options, settings, token, repair=repair, gate=gate)
        outcome = await _run(runner, work, settings, token)
        return ChatCompletion(
            id=completion_id,
            created=int(time.time()),
            model=model_name,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": outcome.text},
                    "finish_reason": outcome.finish_reason,
                }
            ],
            usage=_usage(outcome),
            radialog=_extras(outcome),
        )

    # ------------------------------------------------------------------ web page

    static_dir = resources.files("radialog.serve") / "static"

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(static_dir / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    return app


def _chat_work(
    model: Any,
    chat: ParsedChat,
    xray: Any,
    options: GenerationOptions,
    settings: ServeSettings,
    token: CancelToken,
    on_text: Callable[[str], None] | None = None,
    *,
    repair: bool = True,
    gate: Any = None,
) -> Callable[[], ChatOutcome]:
    """The blocking model call of one chat completion, to run on the model thread."""

    def work() -> ChatOutcome:
        return run_chat(
            model,
            chat,
            xray,
            options,
            max_context_tokens=settings.max_context_tokens,
            on_text=on_text,
            should_stop=lambda: token.cancelled,
            repair=repair,
            gate=gate,
        )

    return work


def _screen(model: Any, xray: Any, force: bool, param: str, override: str) -> Any:
    """The input gate on an uploaded image (before any model work): its GateResult, or the
    422 `not_a_chest_xray` error that says why and how to override."""
    from radialog.gate import NotAChestXRayError, screen

    try:
        return screen(
            getattr(model, "gate", None),
            xray,
            force=force,
            name="the uploaded image",
            override=override,
        )
    except NotAChestXRayError as exc:
        raise ApiError(422, str(exc), exc.code, param) from None


async def _run(runner: ModelRunner, work: Any, settings: ServeSettings, token: CancelToken) -> Any:
    try:
        return await runner.run(work, timeout=settings.timeout_s, token=token)
    except GenerationCancelled:
        raise _timeout(settings) from None
    except ApiError:
        raise
    except PromptTooLongError as exc:
        raise ApiError(400, str(exc), "context_length_exceeded", "messages") from None
    except RadialogError as exc:
        raise ApiError(400, str(exc), "invalid_request") from None


def _timeout(settings: ServeSettings) -> ApiError:
    return ApiError(
        504,
        f"the request took longer than the server's limit of {settings.timeout_s:g} s; "
        "ask for fewer tokens (max_tokens) or retry later",
        "timeout",
    )


def _usage(outcome: ChatOutcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
    }


def _extras(outcome: ChatOutcome) -> dict[str, Any]:
    return {
        "kind": outcome.kind,
        "findings": outcome.findings,
        "predicted": outcome.predicted,
        "dropped_turns": outcome.dropped_turns,
        "correction": outcome.correction,
        "report": outcome.report,
        "original_report": outcome.original_report,
        "consistency": outcome.consistency,
        "thresholds": outcome.thresholds,
        "gate": outcome.gate,
        "notices": outcome.notices,
        "disclaimer": DISCLAIMER,
    }


def _stream_chat(
    runner: ModelRunner,
    settings: ServeSettings,
    model: Any,
    chat: ParsedChat,
    xray: Any,
    options: GenerationOptions,
    completion_id: str,
    model_name: str,
    include_usage: bool,
    repair: bool = True,
    gate: Any = None,
) -> StreamingResponse:
    """Server-sent events in OpenAI's chunk format. Admission (503) happens before the
    response starts; errors after that arrive as an `error` event before `[DONE]`."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    token = CancelToken()

    def on_text(delta: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("delta", delta))

    work = _chat_work(
        model, chat, xray, options, settings, token, on_text, repair=repair, gate=gate
    )
    fut = runner.submit(work)  # raises the 503 while we can still send a status code
    fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(queue.put_nowait, ("done", "")))
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def events() -> AsyncIterator[str]:
        deadline = loop.time() + settings.timeout_s
        emitted = ""
        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                kind, delta = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                if kind == "done":
                    break
                emitted += delta
                yield chunk({"content": delta})
            outcome = fut.result()
            if outcome.text.startswith(emitted) and len(outcome.text) > len(emitted):
                yield chunk({"content": outcome.text[len(emitted) :]})
            yield chunk({}, outcome.finish_reason, radialog=_extras(outcome))
            if include_usage:
                body = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model_name,
                    "choices": [],
                    "usage": _usage(outcome),
                }
                yield f"data: {json.dumps(body)}\n\n"
        except (TimeoutError, GenerationCancelled):
            token.cancel()
            yield f"data: {json.dumps(_timeout(settings).body())}\n\n"
        except ApiError as exc:
            yield f"data: {json.dumps(exc.body())}\n\n"
        except PromptTooLongError as exc:
            body = error_body(400, str(exc), "context_length_exceeded", "messages")
            yield f"data: {json.dumps(body)}\n\n"
        except RadialogError as exc:
            yield f"data: {json.dumps(error_body(400, str(exc), 'invalid_request'))}\n\n"
        except Exception:
            log.exception("streaming chat completion failed")
            yield f"data: {json.dumps(error_body(500, 'internal error; see the server log', 'internal_error'))}\n\n"
        finally:
            if not fut.done():
                token.cancel()  # client went away or timeout: stop generating for nobody
                fut.cancel()
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            where = [p for p in first.get("loc", ()) if p != "body"]
            at = f" at character {where[0]}" if where else ""
            reason = str((first.get("ctx") or {}).get("error", "")).strip()
            msg = (
                f"the request body is not valid JSON{at}"
                + (f" ({reason.lower()})" if reason else "")
                + ": send one JSON object, e.g. "
                '{"messages": [{"role": "user", "content": "..."}]}, with '
                "Content-Type: application/json"
            )
            return JSONResponse(error_body(422, msg, "invalid_json"), status_code=422)
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = (
            f"{loc}: {first.get('msg', 'invalid value')}"
            if loc
            else str(first.get("msg", "invalid request"))
        )
        if len(errors) > 1:
            msg += f" (and {len(errors) - 1} more problems)"
        return JSONResponse(error_body(422, msg, "validation_error", loc or None), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail), code),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse(
            error_body(500, "internal error; see the server log", "internal_error"), status_code=500
        )
