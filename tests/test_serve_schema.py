"""The OpenAPI schema matches the behaviour: schemathesis fuzzes the app in-process (ASGI)
with the tiny random model, for a bounded number of examples per operation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from radialog.serve import ServeSettings, create_app  # noqa: E402


def _app():
    torch.set_num_threads(1)
    from radialog.model import RadialogModel

    model = RadialogModel.from_config("tiny")
    # Small limits keep each example fast; the queue is large so fuzzing never sees 503.
    return create_app(
        model, ServeSettings(max_new_tokens=2, max_upload_mb=1, queue_size=64, api_key=None)
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case) -> None:
    # All built-in checks except "schema-valid data must be accepted": whether bytes are a
    # readable X-ray, and whether messages end with a user turn, are rules a JSON schema
    # cannot express; those requests get documented 4xx errors, which the other checks verify.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_schema_documents_the_error_statuses() -> None:
    raw = schema.raw_schema
    chat = raw["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"200", "400", "413", "415", "422", "503", "504"} <= set(chat)
    assert "text/event-stream" in chat["200"]["content"]
    assert "Retry-After" in chat["503"]["headers"]
    assert "multipart/form-data" in raw["paths"]["/v1/reports"]["post"]["requestBody"]["content"]
