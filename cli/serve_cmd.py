"""serve: the web page (app/server.py), with its security options."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from api.keys import add_api_arguments

if TYPE_CHECKING:
    from engine.factory import Services

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MIN_PASSWORD = 8
DEFAULT_MAX_UPLOAD_MB = 1024  # app/server.py has the same default; no import: --help stays instant

Credentials = list[tuple[str, str]]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the chat page (default command)")
    env = os.environ.get
    p.add_argument(
        "--host",
        default=env("HEARTH_HOST") or "127.0.0.1",
        help="address to listen on (HEARTH_HOST); anything but loopback needs credentials",
    )
    p.add_argument("--port", type=int, default=env("HEARTH_PORT") or 7860, help="port (HEARTH_PORT)")
    p.add_argument(
        "--auth",
        default=None,
        help="USER:PASSWORD required to open the page. Visible to other users in `ps`: "
        "prefer HEARTH_AUTH or --auth-file",
    )
    p.add_argument(
        "--auth-file",
        type=Path,
        default=Path(auth_file) if (auth_file := env("HEARTH_AUTH_FILE")) else None,
        help="file with one USER:PASSWORD per line, # for comments (HEARTH_AUTH_FILE); keep it chmod 600",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[h for h in (env("HEARTH_ALLOWED_HOSTS") or "").split(",") if h.strip()],
        metavar="NAME[:PORT]",
        help="another name the page may be opened by, e.g. mybox.lan or a reverse proxy's name "
        "(repeatable; HEARTH_ALLOWED_HOSTS, comma-separated). Requests for any other Host are refused",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=env("HEARTH_MAX_UPLOAD_MB") or float(DEFAULT_MAX_UPLOAD_MB),
        help=f"largest upload (one request) in MB (HEARTH_MAX_UPLOAD_MB; default {DEFAULT_MAX_UPLOAD_MB}; "
        "raise it to upload bigger GGUF models on the Model tab)",
    )
    p.add_argument(
        "--ssl-certfile",
        default=env("HEARTH_SSL_CERTFILE") or None,
        help="TLS certificate (PEM) to serve https (HEARTH_SSL_CERTFILE); needs --ssl-keyfile",
    )
    p.add_argument(
        "--ssl-keyfile",
        default=env("HEARTH_SSL_KEYFILE") or None,
        help="TLS private key (PEM) for --ssl-certfile (HEARTH_SSL_KEYFILE)",
    )
    add_api_arguments(p)  # --api-key, --api-key-file; the key: api.api_key_from(args)
    p.set_defaults(handler=serve)


def parse_auth(value: str) -> tuple[str, str]:
    """USER:PASSWORD (the password may contain ':'), with a password of at least 8 characters."""
    user, sep, password = value.strip().partition(":")
    if not sep or not user.strip() or not password:
        raise SystemExit("credentials must be USER:PASSWORD")
    if len(password) < MIN_PASSWORD:
        raise SystemExit(
            f"the password for {user.strip()!r} is too short: use at least {MIN_PASSWORD} characters"
        )
    return user.strip(), password


def read_auth_file(path: Path) -> Credentials:
    """USER:PASSWORD lines; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SystemExit(f"cannot read --auth-file {path}: {e.strerror or e}") from e
    credentials = [parse_auth(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not credentials:
        raise SystemExit(f"--auth-file {path} holds no USER:PASSWORD line")
    if path.stat().st_mode & 0o077:
        warn(f"{path} can be read by other users; chmod 600 it")
    return credentials


def credentials_from(args: argparse.Namespace) -> Credentials | None:
    """From --auth-file, HEARTH_AUTH and --auth together; None when none is given."""
    credentials: Credentials = []
    if args.auth_file:
        credentials += read_auth_file(args.auth_file)
    if os.environ.get("HEARTH_AUTH"):
        credentials.append(parse_auth(os.environ["HEARTH_AUTH"]))
    if args.auth:
        warn(
            "--auth puts the password on the command line, where other users see it (ps); "
            "use HEARTH_AUTH or --auth-file instead"
        )
        credentials.append(parse_auth(args.auth))
    return credentials or None


def check_exposure(host: str, auth: Credentials | tuple[str, str] | None, tls: bool = False) -> None:
    """Refuse to listen beyond this machine without credentials; warn without TLS."""
    if host in LOOPBACK:
        return
    if not auth:
        raise SystemExit(
            f"Refusing to listen on {host} without credentials: anyone on the network could "
            "read your chats. Set HEARTH_AUTH=USER:PASSWORD or --auth-file FILE, or use 127.0.0.1."
        )
    if not tls:
        warn(
            f"listening on {host} without TLS: passwords and chats cross the network in clear text. "
            "Add --ssl-certfile/--ssl-keyfile, or put Hearth behind an https reverse proxy."
        )
    if host in ("0.0.0.0", "::"):
        warn(
            "other computers must open the page by a name given with --allowed-host "
            "(e.g. --allowed-host mybox.lan --allowed-host 192.168.1.20); other names are refused"
        )


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def serve(args: argparse.Namespace) -> int:
    auth = credentials_from(args)
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise SystemExit("--ssl-certfile and --ssl-keyfile go together")
    if args.max_upload_mb <= 0:
        raise SystemExit("--max-upload-mb must be positive")
    check_exposure(args.host, auth, tls=bool(args.ssl_certfile))
    from api.keys import api_key_from, require_api_key_for

    api_key = api_key_from(args)
    require_api_key_for(args.host, api_key)
    from app.ui import launch

    from .common import build_services

    services = build_services(args, warm_up=True)  # the page comes up while the first turn's parts load
    routers = _api_routers(services, api_key, page_login=auth is not None)
    scheme = "https" if args.ssl_certfile else "http"
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Hearth on {scheme}://{shown}:{args.port}  (data: {services.settings.data_dir})", file=sys.stderr)
    try:
        launch(
            services,
            host=args.host,
            port=args.port,
            auth=auth,
            allowed_hosts=tuple(args.allowed_host),
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
            routers=routers,
        )
    finally:
        services.close()
    return 0


def _api_routers(services: Services, api_key: str | None, *, page_login: bool) -> tuple:
    """The /v1 API on the page's port. The page's login does not cover it, so a page behind a
    password serves the API only with a key of its own."""
    if page_login and api_key is None:
        print(
            "The /v1 API is off: the page needs a login, so give the API a key (--api-key-file).",
            file=sys.stderr,
        )
        return ()
    from api import build_router

    return (build_router(services, api_key=api_key),)
