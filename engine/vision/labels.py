"""Zero-shot labelling: which of the user's labels best describes an image, in CLIP space.

Each label becomes a few prompts ("a photo of a cat.", ...) whose text vectors are
averaged (CLIP's prompt ensembling); the image's similarities to the labels, times
the model's logit scale, go through a softmax, so the answers are probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..errors import ConfigError
from .clip import ClipEmbedder

LABEL_TEMPLATES = ("a photo of a {}.", "a picture of {}.", "an image of the {}.", "{}")
MAX_LABELS = 64


def clean_labels(labels: Iterable[str]) -> list[str]:
    """Trimmed, de-duplicated labels; at least two (one label always scores 100%)."""
    names: list[str] = []
    for label in labels:
        label = " ".join(str(label).split())[:100]
        if label and label not in names:
            names.append(label)
    if len(names) < 2:
        raise ConfigError("Give at least two different labels to choose between.", field="labels")
    if len(names) > MAX_LABELS:
        raise ConfigError(f"At most {MAX_LABELS} labels at a time.", field="labels")
    return names


def zero_shot(
    embedder: ClipEmbedder, image: Sequence[float], names: Sequence[str]
) -> list[tuple[str, float]]:
    """(label, probability) best first; the probabilities sum to 1."""
    prompts = [template.format(name) for name in names for template in LABEL_TEMPLATES]
    vectors = embedder.embed_texts(prompts)
    step = len(LABEL_TEMPLATES)
    scale = embedder.logit_scale
    logits = []
    for i in range(len(names)):
        mean = normalise([sum(column) for column in zip(*vectors[i * step : (i + 1) * step])])
        logits.append(scale * sum(a * b for a, b in zip(image, mean)))
    top = max(logits)
    weights = [math.exp(x - top) for x in logits]
    total = sum(weights)
    return sorted(((n, w / total) for n, w in zip(names, weights)), key=lambda t: -t[1])


def normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
