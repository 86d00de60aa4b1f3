"""What the next-token view needs of an answer: each generated token and the model's top
candidates at its position, as raw log-probabilities (before any sampler), stored compactly.

Per token: the drawn id (int32), its raw log-probability (float32), the mean and standard
deviation of all logits (float32 each, for top-n-sigma), then ``top_n`` candidate ids (int32) and
their log-probabilities (float32): 16 + 8 * top_n bytes (336 at top 40). float32
because the view promises llama.cpp's probabilities to 1e-4; float16 would be off by up to 2e-4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: candidates kept per position (llama.cpp's default top-k is 40: the view covers it)
TOP_N = 40


@dataclass(kw_only=True)
class TokenTrace:
    """Filled by the backend while it generates; one per answer."""

    top_n: int = TOP_N
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_ids: list[Any] = field(default_factory=list)
    top_logprobs: list[Any] = field(default_factory=list)
    #: (mean, standard deviation) of the raw logits over the whole vocabulary
    stats: list[tuple[float, float]] = field(default_factory=list)

    def add(self, token: int, logits: Any) -> None:
        """Record ``token`` and the raw logits (one float per vocabulary entry) it was drawn from.

        This runs once per generated token on the hot path, so it avoids full-vocabulary float64
        work and sorts only the few candidates near the peak (see ``_top``).
        """
        import numpy as np

        row = np.asarray(logits, dtype=np.float32)
        peak = float(row.max())
        lse = peak + float(np.log(np.exp(row - np.float32(peak)).sum(dtype=np.float64)))
        best = _top(row, peak, min(self.top_n, row.size))
        self.ids.append(int(token))
        self.logprobs.append(float(row[token]) - lse)
        self.top_ids.append(best.astype(np.int32))
        self.top_logprobs.append((row[best].astype(np.float64) - lse).astype(np.float32))
        self.stats.append((float(row.mean()), float(row.std())))

    def __len__(self) -> int:
        return len(self.ids)

    def to_bytes(self) -> bytes:
        import numpy as np

        n = len(self.ids)
        head = (
            np.array(self.ids, dtype=np.int32).tobytes()
            + np.array(self.logprobs, dtype=np.float32).tobytes()
            + np.array(self.stats, dtype=np.float32).reshape(n, 2).tobytes()
        )
        ids = np.stack(self.top_ids).astype(np.int32) if n else np.zeros((0, self.top_n), np.int32)
        lps = np.stack(self.top_logprobs).astype(np.float32) if n else np.zeros((0, self.top_n), np.float32)
        return head + ids.tobytes() + lps.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, n_tokens: int, top_n: int) -> TokenTrace:
        import numpy as np

        expected = n_tokens * (16 + 8 * top_n)
        if len(data) != expected:
            raise ValueError(f"token trace holds {len(data)} bytes, expected {expected}")
        buf = np.frombuffer(data, dtype=np.uint8)
        ids = buf[: 4 * n_tokens].view(np.int32)
        lps = buf[4 * n_tokens : 8 * n_tokens].view(np.float32)
        stats = buf[8 * n_tokens : 16 * n_tokens].view(np.float32).reshape(n_tokens, 2)
        rest = buf[16 * n_tokens :]
        top_ids = rest[: 4 * n_tokens * top_n].view(np.int32).reshape(n_tokens, top_n)
        top_lps = rest[4 * n_tokens * top_n :].view(np.float32).reshape(n_tokens, top_n)
        return cls(
            top_n=top_n,
            ids=[int(t) for t in ids],
            logprobs=[float(x) for x in lps],
            top_ids=list(top_ids),
            top_logprobs=list(top_lps),
            stats=[(float(m), float(d)) for m, d in stats],
        )


def _top(row: Any, peak: float, n: int) -> Any:
    """Indices of the ``n`` largest logits, best first.

    A full argpartition of a 50k vocabulary costs more than the rest of the record; the top
    candidates nearly always lie within a few nats of the peak, so select those first and fall
    back to the whole row only when too few are near it.
    """
    import numpy as np

    for margin in (4.0, 8.0, 16.0):
        near = np.flatnonzero(row >= peak - margin)
        if near.size >= n:
            pick = near[np.argpartition(-row[near], n - 1)[:n]]
            return pick[np.argsort(-row[pick], kind="stable")]
    pick = np.argpartition(-row, n - 1)[:n]
    return pick[np.argsort(-row[pick], kind="stable")]
