"""Plain functions behind the Model panel."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from engine.backends.remote import RemoteBackend  # no httpx until a server is connected
from engine.errors import ConfigError, EngineError, ModelError
from engine.settings import AUTO_ON_OFF

from .markup import error_markdown, escape_inline

if TYPE_CHECKING:
    from engine.factory import Services

#: a number box's value: empty is None (or "" from a textbox)
NumberBox = float | str | None


def model_facts(services: Services) -> str:
    info = services.models.info
    if info is None:
        why = services.models.last_error or "no model file chosen"
        return f"**No model loaded.** {why}"
    backend = services.models.backend
    if isinstance(backend, RemoteBackend):
        return remote_facts(backend)
    gpu = (
        f"{'all' if info.n_gpu_layers < 0 else info.n_gpu_layers} layers on the GPU"
        if info.on_gpu
        else (
            "CPU only (this llama-cpp-python build cannot offload to a GPU)"
            if not info.gpu_offload_supported
            else "CPU (0 GPU layers)"
        )
    )
    from .markup import escape_inline as esc  # the GGUF's name and file name are untrusted

    return (
        f"**{esc(info.name)}**\n\n"
        f"| | {info.backend} |\n|---|---|\n"
        f"| file | {esc(Path(info.path).name)} ({info.size_bytes / 1e6:,.0f} MB) |\n"
        f"| quantization | {info.quantization} |\n"
        f"| parameters | {info.n_params / 1e6:,.1f} M |\n"
        f"| context | {info.n_ctx:,} tokens (trained on {info.n_ctx_train:,}) |\n"
        f"| layers | {info.n_layers} |\n"
        f"| chat template | {info.chat_template_source} |\n"
        f"| images | {'yes (projector loaded)' if backend.supports_images else 'no (text only)'} |\n"
        f"| compute | {gpu} |\n"
        f"| CPU threads | {info.threads_note or 'n/a'} |\n"
        f"| flash attention | {info.attention_note or 'n/a'} |\n"
        f"| backend | {info.backend} |" + (f"\n\n⚠️ {info.note}" if info.note else "")
    )


def _int_or_none(value: NumberBox, name: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name} must be a whole number.", field=name) from e
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"{name} must be a whole number.", field=name)
    return int(number)


def load_model(
    services: Services,
    path: str,
    uploaded: str | None,
    n_ctx: NumberBox,
    n_gpu_layers: NumberBox,
    n_threads: NumberBox,
    n_batch: NumberBox,
    flash_attn: str | bool | None,
    type_k: str,
    type_v: str,
    use_mmap: bool,
    use_mlock: bool,
    chat_template: str,
    mmproj: str = "",
) -> tuple[str, str]:
    """Load a model; on failure keep the previous one. Returns (facts markdown, status message)."""
    try:
        model = _page_model(services, (path or "").strip() or None)
        if uploaded:
            model = str(_keep_upload(services, Path(uploaded)))
        changes = dict(
            model=model,
            n_ctx=_int_or_none(n_ctx, "n_ctx") or services.settings.n_ctx,
            n_gpu_layers=_int_or_none(n_gpu_layers, "n_gpu_layers"),
            n_threads=_int_or_none(n_threads, "n_threads"),
            n_batch=_int_or_none(n_batch, "n_batch") or None,  # an empty number box sends 0: auto
            flash_attn=AUTO_ON_OFF.get(flash_attn) if isinstance(flash_attn, str) else flash_attn,
            type_k=(type_k or None) if type_k != "f16" else None,
            type_v=(type_v or None) if type_v != "f16" else None,
            use_mmap=bool(use_mmap),
            use_mlock=bool(use_mlock),
            chat_template=(chat_template or "").strip() or None,
            mmproj=_page_projector(services, (mmproj or "").strip() or None),
            backend_url=None,  # a local file replaces a remote server
        )
        info = services.models.load(**changes)
        return model_facts(services), f"✅ Loaded {escape_inline(info.name)}." + (
            f" {info.note}" if info.note else ""
        )
    except EngineError as e:
        kept = services.models.info
        still = f" Still using {kept.name}." if kept else " No model is loaded."
        return model_facts(services), error_markdown(e) + escape_inline(still)
    except Exception as e:  # noqa: BLE001 - a bad value must never take the app down
        return model_facts(services), f"⚠️ Could not load the model: {escape_inline(e)}"


#: the one answer for any path the page may not load: it says nothing about the file
NOT_ALLOWED = (
    "From this page Hearth loads only models in its models folder ({folder}), uploads, and the "
    "model it was started with. Put the .gguf file in that folder, or upload it."
)


def _page_model(services: Services, spec: str | None) -> str | None:
    """The page is reachable by anyone who can reach the port: it loads no arbitrary server path."""
    start = services.settings.model
    if spec is None or spec == start or spec.startswith("hf:"):  # hf: downloads into the models folder
        return spec
    from engine.backends.llama_cpp import bundled_model_path

    allowed = {_normal(bundled_model_path())}
    if start:
        allowed.add(_normal(Path(start).expanduser()))
    if _normal(Path(spec).expanduser()) in allowed or _in_models(services, spec):
        return spec
    raise ModelError(NOT_ALLOWED.format(folder=services.settings.models_dir))


def _page_projector(services: Services, spec: str | None) -> str | None:
    if spec is None or spec == services.settings.mmproj or _in_models(services, spec):
        return spec
    raise ModelError(NOT_ALLOWED.format(folder=services.settings.models_dir))


def _normal(path: Path) -> str:
    # lexical: "models/../../etc/x" is outside; a link the user put in the folder is theirs
    return os.path.normpath(os.path.abspath(path))


def _in_models(services: Services, spec: str) -> bool:
    folder = _normal(services.settings.models_dir)
    return _normal(Path(spec).expanduser()).startswith(folder + os.sep)


def _keep_upload(services: Services, uploaded: Path) -> Path:
    """Copy an uploaded GGUF into the models folder under a new name, atomically.

    Never over an existing file: the loaded model's file is memory-mapped, and writing into
    it would crash the server (SIGBUS) and lose the old model.
    """
    if uploaded.suffix.lower() != ".gguf":
        raise ModelError(f"{uploaded.name} is not a .gguf file.")
    name = (
        "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in uploaded.name).lstrip(".")
        or "model.gguf"
    )
    folder = services.settings.models_dir
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, uploaded.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        return _link_new_name(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new_name(tmp: Path, wanted: Path) -> Path:
    """Give ``tmp`` the first free name like ``wanted`` (name.gguf, name-2.gguf, ...)."""
    for n in range(1, 1000):
        target = wanted if n == 1 else wanted.with_name(f"{wanted.stem}-{n}{wanted.suffix}")
        try:
            os.link(tmp, target)  # atomic, and fails rather than replace an existing file
            return target
        except FileExistsError:
            continue
    raise ModelError("The models folder already holds too many files of that name; rename the upload.")


# A remote model server (an OpenAI-compatible API) instead of a local GGUF


def remote_facts(backend: RemoteBackend) -> str:
    """The remote server, its models, its context, and what it ignores."""
    info, facts = backend.info, backend.facts
    ignored = ", ".join(escape_inline(name) for name in backend.ignored_settings) or "none"
    counts = (
        "exact (the server's tokenizer)"
        if backend.token_counts_exact
        else "**estimated** (~4 characters per token; the server has no tokenize endpoint)"
    )
    # the server's own words (model names, its URL echo) are untrusted: rendered inert
    models = ", ".join(escape_inline(m) + (" (in use)" if m == info.name else "") for m in facts.models)
    return (
        f"**{escape_inline(info.name)}** on a remote server\n\n"
        f"| | remote |\n|---|---|\n"
        f"| server | {escape_inline(info.path)} ({escape_inline(facts.kind.label)}) |\n"
        f"| models there | {models} |\n"
        f"| context | {info.n_ctx:,} tokens (from {facts.n_ctx_source}) |\n"
        f"| token counts | {counts} |\n"
        f"| settings this server ignores | {ignored} |\n"
        f"| images | no (text only) |\n"
        f"| backend | remote |"
    )


def remote_models(services: Services) -> list[str]:
    """Models the connected server offers (empty when a local model is loaded)."""
    if services.models.info is None:
        return []
    backend = services.models.backend
    return backend.models if isinstance(backend, RemoteBackend) else []


def connect_remote(
    services: Services, url: str | None, key: str | None, model: str | None, n_ctx: NumberBox
) -> tuple[str, str]:
    """Use an OpenAI-compatible server; on failure keep the current model. Returns (facts, status)."""
    try:
        url = (url or "").strip()
        if not url:
            raise ConfigError("Type the server's URL, e.g. http://127.0.0.1:8080.", field="backend_url")
        settings = services.models.settings  # what is loaded now, not what the app started with
        # an empty key box keeps the key, but only for the same server: it must not leak to another
        same_server = settings.backend_url and settings.backend_url.rstrip("/") == url.rstrip("/")
        key = (key or "").strip() or (settings.backend_key if same_server else None)
        info = services.models.load(
            backend_url=url,
            backend_key=key,
            backend_model=(model or "").strip() or None,
            backend_n_ctx=_int_or_none(n_ctx, "backend_n_ctx") or None,
        )
        return model_facts(
            services
        ), f"✅ Connected: {escape_inline(info.name)} at {escape_inline(info.path)}."
    except EngineError as e:
        kept = services.models.info
        still = f" Still using {kept.name}." if kept else " No model is loaded."
        return model_facts(services), error_markdown(e) + escape_inline(still)
