"""`radialog serve`: the OpenAI-compatible HTTP API and the web page (uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import logging

from radialog.commands.options import (
    add_max_context_tokens_argument,
    add_max_new_tokens_argument,
    add_model_argument,
    add_repair_argument,
    load_model,
)

log = logging.getLogger(__name__)

# The server's limits: (flag, ServeSettings field, type, help). Defaults live in ServeSettings.
_LIMITS = (
    ("--max-upload-mb", "max_upload_mb", float, "largest image accepted, in MiB; then 413"),
    (
        "--max-pixels",
        "max_pixels",
        int,
        "largest image accepted, in pixels (width x height x frames, read from the file "
        "header before decoding); then 413. The largest real chest X-rays have about "
        "4,300 x 3,500 = 15 M",
    ),
    ("--max-concurrency", "max_concurrency", int, "model calls at once"),
    ("--queue-size", "queue_size", int, "requests that may wait for the model; then 503"),
    (
        "--timeout",
        "timeout_s",
        float,
        "seconds per request, queue wait included; then 504 and generation stops",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from radialog.serve.settings import ServeSettings

    defaults = ServeSettings()  # the limits' defaults live in ServeSettings only
    add_model_argument(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address (default: %(default)s, loopback only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    parser.add_argument(
        "--api-key",
        default=defaults.api_key,
        help="require this key (Authorization: Bearer KEY) (default: env RADIALOG_API_KEY, "
        "else none)",
    )
    for flag, name, kind, help in _LIMITS:
        parser.add_argument(
            flag,
            dest=name,
            metavar=flag.removeprefix("--").replace("-", "_").upper(),
            type=kind,
            default=getattr(defaults, name),
            help=f"{help} (default: %(default)s)",
        )
    add_max_new_tokens_argument(
        parser,
        default=defaults.max_new_tokens,
        help="default and upper bound of generated tokens per answer (default: %(default)s)",
    )
    add_max_context_tokens_argument(parser)
    add_repair_argument(parser)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from radialog.errors import RadialogError
    from radialog.serve import ServeSettings, create_app

    try:
        settings = ServeSettings(
            **{name: getattr(args, name) for _, name, _, _ in _LIMITS},
            max_new_tokens=args.max_new_tokens,
            max_context_tokens=args.max_context_tokens,
            repair=args.repair,
            api_key=args.api_key or None,
        )
    except ValueError as exc:
        raise RadialogError(str(exc)) from None
    if not _is_loopback(args.host) and settings.api_key is None:
        log.warning(
            "serving on %s without an API key: anyone who can reach this address can use it "
            "(set --api-key or RADIALOG_API_KEY)",
            args.host,
        )
    model = load_model(args)
    app = create_app(model, settings)
    print(f"radialog serving {model.name} on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
