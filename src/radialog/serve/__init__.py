"""HTTP API (OpenAI-compatible chat completions, report upload) and the web page."""

from radialog.serve.settings import ServeSettings


def create_app(model, settings=None):  # noqa: ANN001, ANN201 - thin lazy re-export
    """See `radialog.serve.app.create_app` (imported lazily: FastAPI loads only when used)."""
    from radialog.serve.app import create_app as _create_app

    return _create_app(model, settings)


__all__ = ["ServeSettings", "create_app"]
