"""serve: the web page."""

from __future__ import annotations

import argparse
import os
import sys

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the chat page (default command)")
    p.add_argument(
        "--host",
        default=os.environ.get("HEARTH_HOST") or "127.0.0.1",
        help="address to listen on (HEARTH_HOST); anything but loopback needs --auth",
    )
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("HEARTH_PORT") or 7860), help="port (HEARTH_PORT)"
    )
    p.add_argument(
        "--auth",
        default=os.environ.get("HEARTH_AUTH") or None,
        help="USER:PASSWORD required to open the page (HEARTH_AUTH)",
    )
    p.set_defaults(handler=serve)


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("--auth must be USER:PASSWORD")
    return user, password


def check_exposure(host: str, auth: tuple[str, str] | None) -> None:
    """Refuse to listen beyond this machine without credentials."""
    if host not in LOOPBACK and auth is None:
        raise SystemExit(
            f"Refusing to listen on {host} without credentials: anyone on the network could "
            "read your chats. Add --auth USER:PASSWORD (or HEARTH_AUTH), or use 127.0.0.1."
        )


def serve(args: argparse.Namespace) -> int:
    auth = parse_auth(args.auth)
    check_exposure(args.host, auth)
    from app.ui import launch

    from .common import build_services

    services = build_services(args, warm_up=True)  # the page comes up while the first turn's parts load
    print(f"Hearth on http://{args.host}:{args.port}  (data: {services.settings.data_dir})", file=sys.stderr)
    try:
        launch(services, host=args.host, port=args.port, auth=auth)
    finally:
        services.close()
    return 0
