"""How big a training run is next to published ones: tokens per parameter and corpus size.

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models", the Chinchilla paper)
found that for a fixed compute budget loss is lowest with about 20 training tokens per model
parameter. Published training-set sizes for scale: GPT-3 300 B tokens (Brown et al. 2020,
"Language Models are Few-Shot Learners"), Llama 2 2 T tokens (Touvron et al. 2023, "Llama 2:
Open Foundation and Fine-Tuned Chat Models").
"""

from __future__ import annotations

CHINCHILLA_TOKENS_PER_PARAM = 20
PUBLISHED_TOKENS = (("GPT-3 (Brown et al. 2020)", 300e9), ("Llama 2 (Touvron et al. 2023)", 2e12))


def _si(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g}"


def tokens_per_parameter_line(params: int, train_tokens: int) -> str:
    """e.g. ``1.31 M training tokens = 0.41 tokens/parameter; compute-optimal ... 64.2 M``."""
    optimal = CHINCHILLA_TOKENS_PER_PARAM * params
    return (f"{_si(train_tokens)} training tokens for {_si(params)} parameters = "
            f"{train_tokens / params:.3g} tokens/parameter; compute-optimal (Chinchilla, "
            f"~{CHINCHILLA_TOKENS_PER_PARAM} tokens/parameter): {_si(optimal)} tokens")


def corpus_scale_line(tokens: int) -> str:
    """The corpus's tokens as a share of published training sets."""
    return f"scale: {_si(tokens)} tokens = " + ", ".join(
        f"{100 * tokens / n:.2g}% of {name}'s {_si(n)}" for name, n in PUBLISHED_TOKENS)
