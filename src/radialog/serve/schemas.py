"""Request and response models of the HTTP API (they generate the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TOKENS_LIMIT = 4096


class ImageURL(BaseModel):
    url: str = Field(
        description="a data URI (data:image/png;base64,...) of PNG, JPEG or DICOM bytes"
    )
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions request; unknown OpenAI parameters are ignored."""

    model_config = ConfigDict(extra="ignore")

    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    model: str | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=1)
    seed: int | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    repair: bool | None = Field(
        default=None,
        description="radialog: repair a generated report that disagrees with its findings "
        "list (default: the server's setting, on unless started with --no-repair)",
    )
    force: bool | None = Field(
        default=None,
        description="radialog: run the model even when the input gate refuses the image as "
        "not a chest X-ray (422 not_a_chest_xray otherwise); the answer's `radialog.gate` "
        "then records the override",
    )


class GateInfo(BaseModel):
    """The input gate's verdict on the image (`radialog.gate`)."""

    decision: str = Field(description="accept, warn, refuse (only with force) or off (no gate)")
    score: float | None = Field(default=None, description="P(chest radiograph), 0..1")
    reason: str | None = None
    message: str | None = None
    forced: bool = Field(default=False, description="refused, and overridden by force")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class CorrectionInfo(BaseModel):
    report: str = Field(
        description="the report after this turn (the previous one when the answer was not a report)"
    )
    prompt: str | None
    added: dict[str, bool]
    removed: dict[str, bool]
    other_changes: dict[str, list[str]]
    applied: bool
    kept_old: bool
    answer: str | None = Field(default=None, description="what the model answered")
    replaced: bool = Field(
        default=False, description="the answer is a report and replaced the previous one"
    )
    previous_report: str | None = None


class StatementInfo(BaseModel):
    label: str
    evidence: list[str] = Field(description="the report sentences that decided it")


class ConsistencyInfo(BaseModel):
    """The labeler's check of a generated report against the findings list it was written
    from (`radialog.consistency`)."""

    consistent: bool
    listed: list[str] = Field(description="findings given to the report prompt")
    stated: list[StatementInfo] = Field(description="listed findings the report states")
    omitted: list[StatementInfo] = Field(description="listed findings the report does not state")
    unsupported: list[StatementInfo] = Field(
        description="findings the report asserts that are not listed"
    )
    repaired: bool = Field(description="an automatic repair replaced the first draft")
    original_report: str | None = Field(description="the first draft, when repaired")
    repair_request: str | None = None
    notes: list[str] = Field(default_factory=list)


class RadialogInfo(BaseModel):
    """radialog's additions to the OpenAI response (clients that do not know them ignore them)."""

    kind: str = Field(description="report, ask, correct, easy, summary, impression or translate")
    findings: dict[str, float] | None = None
    predicted: list[str] | None = None
    dropped_turns: int = 0
    correction: CorrectionInfo | None = None
    report: str | None = Field(
        default=None, description="the current report after this turn (image dialogs)"
    )
    original_report: str | None = Field(
        default=None, description="the report the dialog started from, before corrections"
    )
    consistency: ConsistencyInfo | None = Field(
        default=None, description="the check of a report generated for this request"
    )
    thresholds: dict[str, float] | None = None
    gate: GateInfo | None = Field(default=None, description="the input gate on the image")
    notices: list[str] = Field(
        default_factory=list, description="e.g. older turns left out, an empty answer"
    )
    disclaimer: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    radialog: RadialogInfo


class ReportResponse(BaseModel):
    """Same shape as `radialog report --json`, plus the preview image when asked for."""

    findings: dict[str, float]
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="per-label classifier thresholds: findings above them are `predicted`",
    )
    predicted: list[str]
    report: str
    model: str
    disclaimer: str
    timings: dict[str, float]
    consistency: ConsistencyInfo | None = None
    gate: GateInfo | None = Field(default=None, description="the input gate on the image")
    image: str | None = Field(
        default=None, description="preprocessed 8-bit PNG as a data URI (include_image=true)"
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "radialog"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    busy: int = Field(description="requests running or queued")
    capacity: int
    backend: str = Field(description="text generation backend: llamacpp, fast or hf")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
