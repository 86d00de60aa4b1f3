"""CLIP embeddings through open_clip: the only module that imports open_clip and torch.

Nothing loads until an image feature is used. Before loading, ``plan()`` works out
where the weights come from (a ``local-dir:`` folder, a checkpoint file, the Hugging
Face cache, or a download) and turns a missing file into a VisionError that says
what is missing and how to provide it, without waiting on an unreachable network.

Vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VisionError
from . import hub

LOCAL_DIR = "local-dir:"
HF_HUB = "hf-hub:"
#: checkpoint files open_clip looks for in a local-dir folder (factory._find_checkpoint_in_dir)
CHECKPOINT_GLOBS = ("*.safetensors", "*.bin", "*.pth")
#: open_clip's default weight file names on the Hub (pretrained.HF_WEIGHTS_NAME and its safetensors twin)
HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

#: seconds before a failed weights check or load is tried again
RETRY_AFTER_S = 30.0

HOW_TO_PROVIDE = (
    "To provide CLIP weights, either run Hearth once on a computer with internet (open_clip "
    "downloads the default ViT-B-32 weights, about 600 MB, into the Hugging Face cache), or pass "
    "--clip-pretrained /path/to/open_clip_model.safetensors (HEARTH_CLIP_PRETRAINED) for a "
    "checkpoint file of the --clip-model architecture, or --clip-model local-dir:/path/to/folder "
    "(HEARTH_CLIP_MODEL) for a folder holding open_clip_config.json and the weights. "
    "Everything else in Hearth works without them."
)


@dataclass(frozen=True, kw_only=True)
class ClipConfig:
    """Which CLIP to load, and how to run it."""

    #: open_clip architecture name ("ViT-B-32"), "local-dir:PATH" or "hf-hub:ORG/REPO"
    model: str = "ViT-B-32"
    #: pretrained tag ("laion2b_s34b_b79k") or checkpoint file; ignored for local-dir/hf-hub
    pretrained: str = "laion2b_s34b_b79k"
    #: "cpu", "cuda", "cuda:1"; None = CUDA when available
    device: str | None = None
    #: images per forward pass
    batch_size: int = 16

    @property
    def key(self) -> str:
        """A short stable id of the weights, used to name this model's vector indexes."""
        ref = self.model if self.model.startswith((LOCAL_DIR, HF_HUB)) else f"{self.model}|{self.pretrained}"
        return hashlib.sha1(ref.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        if self.model.startswith((LOCAL_DIR, HF_HUB)):
            return self.model
        return f"{self.model} / {self.pretrained}"


@dataclass(frozen=True, kw_only=True)
class WeightsPlan:
    """How open_clip will be asked to load the model (the result of pre-flight checks)."""

    model_name: str
    pretrained: str | None
    #: where the weights are, for messages
    source: str
    #: open_clip will download them on first use
    downloads: bool = False
    #: preprocessing and activation of a pretrained tag whose file we pass directly
    overrides: dict[str, Any] = field(default_factory=dict)


class ClipEmbedder:
    """A lazily loaded open_clip model with its own preprocessing transform and tokenizer."""

    def __init__(self, config: ClipConfig):
        self.config = config
        self._loaded: tuple[Any, Any, Any, Any] | None = None  # model, preprocess, tokenizer, device
        self._plan: WeightsPlan | None = None
        self._dimension: int | None = None
        #: (when, message) of the last failed check or load
        self._failure: tuple[float, str] | None = None
        self._lock = threading.Lock()

    # pre-flight

    def plan(self) -> WeightsPlan:
        """Check that the weights can be found; raise VisionError saying what is missing."""
        if self._plan is None:
            self._raise_recent_failure()
            model = self.config.model.strip()
            try:
                if model.startswith(LOCAL_DIR):
                    self._plan = _plan_local_dir(model[len(LOCAL_DIR) :])
                elif model.startswith(HF_HUB):
                    self._plan = _plan_hf_hub(model[len(HF_HUB) :])
                else:
                    self._plan = _plan_builtin(model, self.config.pretrained.strip())
            except VisionError as e:
                self._failure = (time.monotonic(), str(e))
                raise
        return self._plan

    def _raise_recent_failure(self) -> None:
        """A failed check is not retried for a while: chat turns must not each wait on it."""
        if self._failure is not None and time.monotonic() - self._failure[0] < RETRY_AFTER_S:
            raise VisionError(self._failure[1])

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def recent_failure(self) -> str | None:
        """Why the last check or load failed, while that is still taken as the answer."""
        try:
            self._raise_recent_failure()
        except VisionError as e:
            return None if self.loaded else str(e)
        return None

    # loading

    def _load(self) -> tuple[Any, Any, Any, Any]:
        with self._lock:
            if self._loaded is None:
                plan = self.plan()
                self._raise_recent_failure()
                try:
                    self._loaded = self._create(plan)
                except VisionError as e:
                    self._failure = (time.monotonic(), str(e))
                    raise
            return self._loaded

    def _create(self, plan: WeightsPlan) -> tuple[Any, Any, Any, Any]:
        device = _pick_device(self.config.device)
        try:
            import open_clip

            model, preprocess = open_clip.create_model_from_pretrained(
                plan.model_name, plan.pretrained, device=device, **plan.overrides
            )
            tokenizer = open_clip.get_tokenizer(plan.model_name)
        except Exception as e:  # open_clip raises RuntimeError/ValueError/OSError/KeyError alike
            raise VisionError(
                f"Could not load CLIP {self.config.label} from {plan.source}: {e}. {HOW_TO_PROVIDE}"
            ) from e
        model.eval()
        return model, preprocess, tokenizer, device

    def load(self) -> str:
        """Load now; return a one-line description of what was loaded."""
        _, _, _, device = self._load()
        return f"CLIP {self.config.label} on {device} ({self.dimension}-d vectors)"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            # towers differ between CLIP classes; one tiny forward pass answers for all of them
            self._dimension = len(self.embed_texts([""])[0])
        return self._dimension

    @property
    def image_size(self) -> int:
        """The side of the square the model sees (224 for ViT-B-32)."""
        size = self._load()[0].visual.preprocess_cfg.get("size", 224)
        return int(max(size) if isinstance(size, (tuple, list)) else size)

    @property
    def logit_scale(self) -> float:
        import torch

        with torch.inference_mode():
            return float(self._load()[0].logit_scale.exp().item())

    # embedding

    def preprocess(self, image: Any) -> Any:
        """The model's own transform: a PIL RGB image -> a normalised tensor. Thread-safe."""
        return self._load()[1](image)

    def embed_tensors(self, tensors: Sequence[Any]) -> list[list[float]]:
        """Preprocessed images -> L2-normalised vectors, ``batch_size`` at a time."""
        if not tensors:
            return []
        import torch

        model, _, _, device = self._load()
        out: list[list[float]] = []
        step = max(1, self.config.batch_size)
        with torch.inference_mode():
            for start in range(0, len(tensors), step):
                batch = torch.stack(list(tensors[start : start + step])).to(device)
                vectors = model.encode_image(batch, normalize=True)
                out.extend(vectors.float().cpu().tolist())
        return out

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Texts -> L2-normalised vectors in the same space (cut at CLIP's context length)."""
        if not texts:
            return []
        import torch

        model, _, tokenizer, device = self._load()
        out: list[list[float]] = []
        step = max(1, self.config.batch_size) * 4
        with torch.inference_mode():
            for start in range(0, len(texts), step):
                tokens = tokenizer(list(texts[start : start + step])).to(device)
                out.extend(model.encode_text(tokens, normalize=True).float().cpu().tolist())
        return out

    def close(self) -> None:
        with self._lock:
            self._loaded = None


def _pick_device(wanted: str | None) -> str:
    import torch

    if not wanted:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(wanted)
    except (RuntimeError, ValueError) as e:
        raise VisionError(f"Unknown CLIP device {wanted!r}: use cpu, cuda or cuda:N.") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VisionError(
            f"CLIP device {wanted!r} was asked for, but this torch build sees no CUDA GPU; use cpu."
        )
    return str(device)


def _plan_local_dir(raw: str) -> WeightsPlan:
    folder = Path(raw).expanduser().resolve()
    if not raw.strip():
        raise VisionError(f"--clip-model local-dir: needs a folder path. {HOW_TO_PROVIDE}")
    if not folder.is_dir():
        raise VisionError(f"The CLIP folder {folder} does not exist. {HOW_TO_PROVIDE}")
    if not (folder / "open_clip_config.json").is_file():
        raise VisionError(
            f"The CLIP folder {folder} has no open_clip_config.json (it must hold the model's "
            f"open_clip_config.json next to its weights). {HOW_TO_PROVIDE}"
        )
    if not any(any(folder.glob(pattern)) for pattern in CHECKPOINT_GLOBS):
        # open_clip would silently build random weights; that is never what a user wants
        raise VisionError(
            f"The CLIP folder {folder} holds no weights file (*.safetensors, *.bin or *.pth). {HOW_TO_PROVIDE}"
        )
    return WeightsPlan(model_name=f"{LOCAL_DIR}{folder}", pretrained=None, source=str(folder))


def _plan_hf_hub(repo: str) -> WeightsPlan:
    repo = repo.strip().strip("/")
    config = hub.cached_file(repo, "open_clip_config.json")
    if config is not None and any((config.parent / name).is_file() for name in HUB_WEIGHT_FILES):
        # load the cached snapshot as a local folder: no network call at all
        return WeightsPlan(
            model_name=f"{LOCAL_DIR}{config.parent}", pretrained=None, source=f"cache of {repo}"
        )
    _require_download_possible(f"hf-hub:{repo}", f"https://huggingface.co/{repo}")
    return WeightsPlan(
        model_name=f"{HF_HUB}{repo}", pretrained=None, source=f"huggingface.co/{repo}", downloads=True
    )


def _plan_builtin(model: str, pretrained: str) -> WeightsPlan:
    import open_clip  # the tag table lives in open_clip; importing it pulls in torch

    name = model.replace("/", "-")
    if name not in open_clip.list_models():
        raise VisionError(
            f"Unknown CLIP architecture {model!r}. Use an open_clip name such as ViT-B-32, or "
            f"local-dir:/path/to/folder. {HOW_TO_PROVIDE}"
        )
    if not pretrained:
        raise VisionError(
            f"No CLIP weights are configured for {name} (--clip-pretrained is empty). {HOW_TO_PROVIDE}"
        )
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        if Path(pretrained).expanduser().is_file():
            path = Path(pretrained).expanduser().resolve()
            return WeightsPlan(model_name=name, pretrained=str(path), source=str(path))
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise VisionError(
            f"--clip-pretrained {pretrained!r} is neither a checkpoint file that exists nor a known "
            f"tag for {name} (known tags: {tags}). {HOW_TO_PROVIDE}"
        )
    return _plan_tag(name, pretrained, cfg)


def _plan_tag(name: str, tag: str, cfg: dict[str, Any]) -> WeightsPlan:
    overrides: dict[str, Any] = {
        f"image_{key}": cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in cfg
    }
    if cfg.get("quick_gelu"):
        overrides["force_quick_gelu"] = True
    cached = _cached_tag_file(cfg)
    if cached is not None:
        # open_clip would re-check the Hub first (slow offline); hand it the cached file
        return WeightsPlan(model_name=name, pretrained=str(cached), source=str(cached), overrides=overrides)
    where = f"https://huggingface.co/{cfg['hf_hub'].strip('/')}" if cfg.get("hf_hub") else cfg.get("url", "")
    _require_download_possible(f"{name} / {tag}", where)
    return WeightsPlan(model_name=name, pretrained=tag, source=where, downloads=True)


def _cached_tag_file(cfg: dict[str, Any]) -> Path | None:
    if cfg.get("file"):
        return Path(cfg["file"]) if Path(cfg["file"]).is_file() else None
    if cfg.get("hf_hub"):
        repo, filename = cfg["hf_hub"].rsplit("/", 1)
        names = [filename] if filename else list(HUB_WEIGHT_FILES)
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for candidate in names:
            found = hub.cached_file(repo, candidate)
            if found is not None:
                return found
    if cfg.get("url"):
        local = Path.home() / ".cache" / "clip" / Path(cfg["url"]).name  # open_clip's URL cache
        return local if local.is_file() else None
    return None


def _require_download_possible(what: str, where: str) -> None:
    if hub.hub_offline():
        raise VisionError(
            f"The CLIP weights for {what} are not on this computer, and downloads are off "
            f"(HF_HUB_OFFLINE is set). They come from {where}. {HOW_TO_PROVIDE}"
        )
    if not hub.hub_reachable():
        raise VisionError(
            f"The CLIP weights for {what} are not on this computer, and {where} cannot be "
            f"reached (no internet?). {HOW_TO_PROVIDE}"
        )
