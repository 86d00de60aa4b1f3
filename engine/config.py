"""Two kinds of configuration.

``Settings`` is fixed when the app starts or a model loads (paths, n_ctx, GPU layers);
it lives in ``engine.settings`` and is re-exported here, the one place callers import both.
``GenerationConfig`` may change on every turn (sampling, max tokens, stop strings).

Both are frozen, keyword-only dataclasses whose fields carry metadata (range, step,
help text); the UI builds its sliders and the command line its flags from that
metadata, so a new field appears everywhere at once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .settings import Settings

__all__ = [
    "BIAS_BAN",
    "DEFAULT_SAMPLERS",
    "SAMPLER_NAMES",
    "SEED_RANDOM",
    "GenerationConfig",
    "Settings",
    "parse_logit_bias",
    "parse_samplers",
    "parse_stop_strings",
]

SEED_RANDOM = -1

#: the sampler stages llama.cpp can order (its server's names), and its default order; the
#: stock llama-cpp-python chain is this order with DRY, top-n-sigma and XTC off
SAMPLER_NAMES = ("penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature")
DEFAULT_SAMPLERS = SAMPLER_NAMES
#: settings only llama.cpp's own sampler chain applies (llama-cpp-python's stock chain has none
#: of them): image turns ignore them, llama.cpp's server takes them under the same names
CHAIN_ONLY_SETTINGS = (
    "dynatemp_range",
    "dynatemp_exponent",
    "top_n_sigma",
    "xtc_probability",
    "xtc_threshold",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
    "samplers",
)
#: a logit bias this low (OpenAI's convention) means "never this token"
BIAS_BAN = -100.0


def _num(default: float | int, lo: float, hi: float, step: float, label: str, help: str) -> Any:
    return field(
        default=default,
        metadata={"min": lo, "max": hi, "step": step, "label": label, "help": help},
    )


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """Sampling settings for one answer. Validated on construction."""

    temperature: float = _num(
        0.7, 0.0, 2.0, 0.05, "Temperature", "Randomness; 0 always picks the most likely token."
    )
    top_k: int = _num(40, 0, 200, 1, "Top-k", "Sample among the k most likely tokens; 0 = off.")
    top_p: float = _num(0.95, 0.0, 1.0, 0.01, "Top-p", "Nucleus: smallest set with this mass.")
    min_p: float = _num(0.05, 0.0, 1.0, 0.01, "Min-p", "Drop tokens below this fraction of the top token.")
    typical_p: float = _num(1.0, 0.0, 1.0, 0.01, "Typical-p", "Locally typical sampling; 1 = off.")
    repeat_penalty: float = _num(
        1.1, 0.0, 2.0, 0.01, "Repeat penalty", "Penalise recently used tokens; 1 = off."
    )
    presence_penalty: float = _num(
        0.0, -2.0, 2.0, 0.05, "Presence penalty", "Penalise tokens that appeared at all."
    )
    frequency_penalty: float = _num(
        0.0, -2.0, 2.0, 0.05, "Frequency penalty", "Penalise tokens by how often they appeared."
    )
    mirostat_mode: int = _num(0, 0, 2, 1, "Mirostat", "0 = off, 1 or 2 = Mirostat v1/v2.")
    mirostat_tau: float = _num(5.0, 0.0, 10.0, 0.1, "Mirostat tau", "Target surprise.")
    mirostat_eta: float = _num(0.1, 0.0, 1.0, 0.01, "Mirostat eta", "Mirostat learning rate.")
    dynatemp_range: float = _num(
        0.0,
        0.0,
        5.0,
        0.05,
        "Dynamic temperature range",
        "Temperature varies by ± this with the entropy of the candidates; 0 = off.",
    )
    dynatemp_exponent: float = _num(
        1.0, 0.0, 5.0, 0.05, "Dynamic temperature exponent", "How the entropy maps onto the range."
    )
    top_n_sigma: float = _num(
        0.0,
        0.0,
        10.0,
        0.05,
        "Top-n-sigma",
        "Keep tokens within n standard deviations of the best logit; 0 = off.",
    )
    xtc_probability: float = _num(
        0.0,
        0.0,
        1.0,
        0.01,
        "XTC probability",
        "Chance per token that XTC removes the most likely choices; 0 = off.",
    )
    xtc_threshold: float = _num(
        0.1, 0.0, 0.5, 0.01, "XTC threshold", "XTC removes every choice above this probability but the last."
    )
    dry_multiplier: float = _num(
        0.0, 0.0, 5.0, 0.05, "DRY multiplier", "Penalise repeating earlier sequences; 0 = off."
    )
    dry_base: float = _num(1.75, 1.0, 4.0, 0.05, "DRY base", "Penalty growth per repeated token.")
    dry_allowed_length: int = _num(
        2, 1, 20, 1, "DRY allowed length", "Repeats up to this long are not penalised."
    )
    dry_penalty_last_n: int = _num(
        -1, -1, 32768, 1, "DRY last n", "Tokens DRY looks back over; -1 = the whole context."
    )
    max_tokens: int = _num(512, 1, 32768, 1, "Max new tokens", "Longest answer, in tokens.")
    seed: int = _num(SEED_RANDOM, -1, 2**31 - 1, 1, "Seed", "Fix for reproducible answers; -1 = random.")
    stop: tuple[str, ...] = field(
        default=(),
        metadata={"label": "Stop strings", "help": "Generation ends at any of these strings."},
    )
    logit_bias: tuple[tuple[int, float], ...] = field(
        default=(),
        metadata={
            "label": "Logit bias",
            "help": f"token id: bias, comma-separated (e.g. 1234:-5); {BIAS_BAN:g} bans the token.",
        },
    )
    samplers: tuple[str, ...] = field(
        default=DEFAULT_SAMPLERS,
        metadata={
            "label": "Sampler order",
            "help": "Stages in the order applied: " + ", ".join(SAMPLER_NAMES),
        },
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "stop":
                _check_stop(value)
            elif f.name == "logit_bias":
                _check_logit_bias(value)
            elif f.name == "samplers":
                _check_samplers(value)
            else:
                _check_number(f, value)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> GenerationConfig:
        """Build from loosely typed input (slider floats, CLI strings), coercing types.

        Unknown keys raise ConfigError; missing keys keep their defaults.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"Unknown generation setting '{name}'.", field=name)
            if value is None:
                continue
            kwargs[name] = _coerce(known[name], value)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> GenerationConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        d["logit_bias"] = [[token, bias] for token, bias in self.logit_bias]
        d["samplers"] = list(self.samplers)
        return d

    def uses_extra_samplers(self) -> bool:
        """Whether any sampler beyond llama-cpp-python's stock chain is on (or reordered)."""
        return bool(
            self.dynatemp_range > 0
            or self.top_n_sigma > 0
            or self.xtc_probability > 0
            or self.dry_multiplier > 0
            or self.logit_bias
            or self.samplers != DEFAULT_SAMPLERS
        )

    @staticmethod
    def numeric_fields() -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(GenerationConfig) if "min" in f.metadata]


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    if f.name == "stop":
        if isinstance(value, str):
            return parse_stop_strings(value)
        return tuple(str(s) for s in value)
    if f.name == "logit_bias":
        return parse_logit_bias(value)
    if f.name == "samplers":
        return parse_samplers(value)
    kind = int if f.type in ("int", int) else float
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"{f.metadata['label']} must be a number between {f.metadata['min']} and "
            f"{f.metadata['max']}; got {value!r}.",
            field=f.name,
        ) from e
    if kind is int:
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(
                f"{f.metadata['label']} must be a whole number between {f.metadata['min']} "
                f"and {f.metadata['max']}; got {value!r}.",
                field=f.name,
            )
        return int(number)
    return number


def _check_number(f: dataclasses.Field, value: Any) -> None:
    lo, hi, label = f.metadata["min"], f.metadata["max"], f.metadata["label"]
    want_int = f.type in ("int", int)
    ok_type = isinstance(value, int) if want_int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "a whole number" if want_int else "a number"
        raise ConfigError(
            f"{label} ({f.name}) must be {kind} between {lo} and {hi}; got {value!r}.",
            field=f.name,
        )
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{label} ({f.name}) must be between {lo} and {hi}; got {value!r}.", field=f.name)


def _check_stop(value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(s, str) for s in value):
        raise ConfigError("Stop strings must be a tuple of strings.", field="stop")
    if any(s == "" for s in value):
        raise ConfigError("Stop strings must not be empty.", field="stop")
    if len(value) > 16 or any(len(s) > 200 for s in value):
        raise ConfigError("At most 16 stop strings of up to 200 characters.", field="stop")


def _check_logit_bias(value: Any) -> None:
    ok = isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and type(p[0]) is int and isinstance(p[1], float) for p in value
    )
    if not ok:
        raise ConfigError("Logit bias must be (token id, bias) pairs.", field="logit_bias")
    if len(value) > 1024:
        raise ConfigError("At most 1024 logit biases.", field="logit_bias")
    for token, bias in value:
        if not 0 <= token < 2**31 or not (math.isfinite(bias) and -100 <= bias <= 100):
            raise ConfigError(
                f"Logit bias {token}:{bias} is out of range: token ids from 0, biases from -100 to 100.",
                field="logit_bias",
            )


def _check_samplers(value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(s, str) for s in value):
        raise ConfigError("Sampler order must be a tuple of stage names.", field="samplers")
    unknown = [s for s in value if s not in SAMPLER_NAMES]
    if unknown or len(set(value)) != len(value):
        raise ConfigError(
            f"Sampler order takes each of {', '.join(SAMPLER_NAMES)} at most once; got {', '.join(value)}.",
            field="samplers",
        )


def parse_logit_bias(value: Any) -> tuple[tuple[int, float], ...]:
    """Logit biases from "id:bias, id:bias" text, an OpenAI ``{"id": bias}`` map or ``[[id, bias]]``.

    Token ids come first because a text may tokenize differently in context; later entries for the
    same token win. A bias of -100 or less bans the token, as with OpenAI.
    """
    if isinstance(value, str):
        pairs: list[Any] = [p.split(":", 1) for p in value.replace("\n", ",").split(",") if p.strip()]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = list(value)
    out: dict[int, float] = {}
    for pair in pairs:
        try:
            token, bias = pair
            if isinstance(token, bool) or isinstance(bias, bool):
                raise ValueError
            number = float(str(token).strip())
            if number != int(number):
                raise ValueError
            out[int(number)] = max(float(str(bias).strip()), BIAS_BAN)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"Logit bias entries look like 1234:-5 (token id, bias); got {pair!r}.", field="logit_bias"
            ) from e
    return tuple(out.items())


def parse_samplers(value: Any) -> tuple[str, ...]:
    """Stage names from "a;b;c" / "a, b" text or a list (llama.cpp's server names; typical_p = typ_p)."""
    names = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    aliases = {"typical_p": "typ_p", "typical": "typ_p", "temp": "temperature"}
    return tuple(aliases.get(str(n).strip(), str(n).strip()) for n in names if str(n).strip())


def parse_stop_strings(text: str) -> tuple[str, ...]:
    """One stop string per line; ``\\n`` inside a line stands for a newline."""
    lines = [line.replace("\\n", "\n") for line in text.splitlines()]
    return tuple(s for s in lines if s.strip("\r") != "")
