"""serve: the web page (app/server.py), with its security options."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .options import env_option, from_environment

log = logging.getLogger("hearth.cli")

if TYPE_CHECKING:
    from engine.factory import Services

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MIN_PASSWORD = 8
DEFAULT_MAX_UPLOAD_MB = 1024  # app/server.py has the same default; no import: --help stays instant

Credentials = list[tuple[str, str]]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the chat page (default command)")
    env_option(
        p, "--host", default="127.0.0.1", help="address to listen on; anything but loopback needs credentials"
    )
    env_option(p, "--port", type=int, default=7860, help="port")
    env_option(
        p,
        "--auth",
        mark_origin=True,
        help="USER:PASSWORD required to open the page. A flag is visible to other users "
        "in `ps`: prefer the variable or --auth-file",
    )
    env_option(
        p,
        "--auth-file",
        type=Path,
        help="file with one USER:PASSWORD per line, # for comments; keep it chmod 600",
    )
    env_option(
        p,
        "--allowed-host",
        env="HEARTH_ALLOWED_HOSTS",
        repeat=True,
        metavar="NAME[:PORT]",
        help="another name the page may be opened by, e.g. mybox.lan or a reverse proxy's name "
        "(repeatable; the variable is comma-separated). Requests for any other Host are refused",
    )
    env_option(
        p,
        "--max-upload-mb",
        type=float,
        default=float(DEFAULT_MAX_UPLOAD_MB),
        help=f"largest upload (one request) in MB (default {DEFAULT_MAX_UPLOAD_MB}; "
        "raise it to upload bigger GGUF models on the Model tab)",
    )
    env_option(p, "--ssl-certfile", help="TLS certificate (PEM) to serve https; needs --ssl-keyfile")
    env_option(p, "--ssl-keyfile", help="TLS private key (PEM) for --ssl-certfile")
    add_api_arguments(p)  # --api-key, --api-key-file; the key: api.api_key_from(args)
    p.set_defaults(handler=serve)


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """The serve command's API flags: --api-key and --api-key-file."""
    g = parser.add_argument_group("OpenAI-compatible API (/v1 on the page's port)")
    keys = g.add_mutually_exclusive_group()
    env_option(
        keys,
        "--api-key",
        help="Bearer key every /v1 call must send; required beyond loopback. "
        "Prefer --api-key-file: a command line is visible to other users of this machine",
    )
    keys.add_argument(
        "--api-key-file", type=Path, default=None, help="read the API key from this file (first line)"
    )


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
    """From --auth-file and --auth (or HEARTH_AUTH) together; None when none is given."""
    credentials: Credentials = []
    if args.auth_file:
        credentials += read_auth_file(args.auth_file)
    if args.auth and not from_environment(args.auth):
        warn(
            "--auth puts the password on the command line, where other users see it (ps); "
            "use HEARTH_AUTH or --auth-file instead"
        )
    if args.auth:
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
    log.warning("%s", message)


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
