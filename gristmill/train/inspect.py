"""Look inside a trained model: next-token distribution, token embeddings, attention patterns.

Each function returns plain data (for ``--json`` and tests); the ``plot_*`` functions draw it
with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.cells import cell_len

from gristmill.errors import InputError
from gristmill.tokenize.bytelevel import token_to_bytes
from gristmill.tokenize.show import escape_control
from gristmill.train.model import apply_rope
from gristmill.train.run import LoadedRun

log = logging.getLogger(__name__)

def show_token(s: str) -> str:
    """A token's text with invisible characters made visible (spaces as ·, newlines as \\n)."""
    return s.replace(" ", "·").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def token_text(run: LoadedRun, token_id: int) -> str:
    """One token's text for display. A byte-level token that is a piece of a UTF-8 character
    (common in Chinese: three bytes a character) shows its bytes escaped (``\\xe7\\x96``), as
    `tokenizer show` prints it; decoding it alone would give U+FFFD, the same for every piece."""
    token = run.tokenizer.id_to_token(token_id)
    data = None if token is None else token_to_bytes(token)
    if data is None:  # not spelled in the byte-level alphabet: the tokenizer's own decoding
        return run.token_str(token_id)
    return "".join(escape_control(c) for c in data.decode("utf-8", errors="backslashreplace"))


def pad_cells(s: str, width: int) -> str:
    """``s`` padded with spaces to ``width`` terminal cells: a CJK character takes two cells, so
    ``str.ljust`` (which counts characters) would push the next column out of line."""
    return s + " " * max(0, width - cell_len(s))


def _context(run: LoadedRun, text: str) -> list[int]:
    ids = run.encode(text) or [run.eos_id]
    if len(ids) > run.config.max_seq_len:
        raise InputError(f"text is {len(ids)} tokens; the model's context is {run.config.max_seq_len}")
    return ids


# --- next token --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Candidate:
    id: int
    token: str
    prob: float     # at temperature 1 (the model's own distribution)
    prob_t: float   # after dividing the logits by the temperature


@dataclass(frozen=True, slots=True)
class NextToken:
    context_tokens: int
    temperature: float
    entropy_bits: float
    entropy_bits_t: float
    candidates: tuple[Candidate, ...]


def entropy_bits(probs: torch.Tensor) -> float:
    """Shannon entropy in bits of a probability vector (0·log 0 = 0)."""
    p = probs.double()
    return float(-(p * torch.log2(p.clamp_min(1e-300))).sum())


@torch.inference_mode()
def next_token(run: LoadedRun, text: str, *, top: int = 10, temperature: float = 1.0) -> NextToken:
    """The ``top`` most probable next tokens after ``text``, before and after ``temperature``."""
    if not temperature > 0:
        raise InputError("temperature must be > 0 to show a distribution (0 would be greedy: the top row)")
    ids = _context(run, text)
    logits, _ = run.model(torch.tensor([ids], device=run.device))
    last = logits[0, -1].float()  # (V,)
    probs, probs_t = last.softmax(-1), (last / temperature).softmax(-1)
    order = torch.topk(probs, min(top, probs.numel())).indices.tolist()
    cands = tuple(Candidate(i, token_text(run, i), float(probs[i]), float(probs_t[i])) for i in order)
    return NextToken(len(ids), temperature, entropy_bits(probs), entropy_bits(probs_t), cands)


# --- embeddings --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WordVector:
    word: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    vector: torch.Tensor  # (C,), the mean of the tokens' embedding rows

    @property
    def averaged(self) -> bool:
        return len(self.ids) > 1


@dataclass(frozen=True, slots=True)
class Neighbour:
    id: int
    token: str
    cosine: float


def word_vector(run: LoadedRun, word: str) -> WordVector:
    """The embedding of ``word``. Inside text a word follows a space, so the " word" spelling is
    used unless "word" alone takes fewer tokens; several tokens are averaged."""
    if not word.strip():
        raise InputError("empty word")
    spaced, bare = run.encode(" " + word.strip()), run.encode(word.strip())
    ids = bare if len(bare) < len(spaced) else spaced
    emb = run.model.embed_tokens.weight
    vec = emb[torch.tensor(ids, device=emb.device)].float().mean(0)
    return WordVector(word, tuple(ids), tuple(token_text(run, i) for i in ids), vec)


def neighbours(run: LoadedRun, vector: torch.Tensor, *, k: int, exclude: set[int]) -> list[Neighbour]:
    """The ``k`` tokens whose embedding rows have the highest cosine similarity to ``vector``."""
    emb = run.model.embed_tokens.weight.float()                      # (V, C)
    tokenizer_vocab = run.tokenizer.get_vocab_size(with_added_tokens=True)
    sims = torch.nn.functional.cosine_similarity(emb, vector[None, :], dim=-1)  # (V,)
    sims[tokenizer_vocab:] = -math.inf  # padding rows beyond the tokenizer are not tokens
    if exclude:
        sims[torch.tensor(sorted(exclude), device=sims.device)] = -math.inf
    top = torch.topk(sims, min(k, int(torch.isfinite(sims).sum())))
    return [Neighbour(i, token_text(run, i), float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]


def nearest(run: LoadedRun, word: str, *, k: int = 10) -> tuple[WordVector, list[Neighbour]]:
    """Cosine neighbours of ``word`` in the token-embedding matrix (its own tokens excluded)."""
    wv = word_vector(run, word)
    return wv, neighbours(run, wv.vector, k=k, exclude=set(wv.ids))


def analogy(run: LoadedRun, a: str, b: str, c: str, *, k: int = 10) -> tuple[list[WordVector], list[Neighbour]]:
    """a : b :: c : ?  answered by the neighbours of b − a + c (the three words excluded)."""
    wa, wb, wc = (word_vector(run, w) for w in (a, b, c))
    target = wb.vector - wa.vector + wc.vector
    return [wa, wb, wc], neighbours(run, target, k=k, exclude=set(wa.ids) | set(wb.ids) | set(wc.ids))


def pca_2d(vectors: torch.Tensor) -> torch.Tensor:
    """Project rows (N, C) on their two principal axes -> (N, 2); signs fixed for stable plots."""
    centred = vectors.double() - vectors.double().mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axes = vh[:2]  # (2, C)
    signs = torch.sign(axes[torch.arange(axes.size(0)), axes.abs().argmax(1)])
    coords = centred @ (axes * signs[:, None]).T
    if coords.size(1) < 2:  # fewer than two points/dimensions: pad the missing axis with zeros
        coords = torch.cat([coords, coords.new_zeros(coords.size(0), 2 - coords.size(1))], dim=1)
    return coords.float()


def plot_embeddings(run: LoadedRun, words: list[str], out: Path) -> list[tuple[WordVector, float, float]]:
    """Draw ``words`` at their 2-D PCA coordinates into ``out`` (PNG); averaged words get a *."""
    if len(words) < 2:
        raise InputError("--plot needs at least two words")
    wvs = [word_vector(run, w) for w in words]
    coords = pca_2d(torch.stack([w.vector for w in wvs])).tolist()
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    for wv, (x, y) in zip(wvs, coords):
        ax.scatter([x], [y], color="tab:blue")
        ax.annotate(wv.word + ("*" if wv.averaged else ""), (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set_title(f"token embeddings, PCA 2-D — {run.path.name}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    if any(w.averaged for w in wvs):
        fig.text(0.01, 0.01, "* several tokens: mean of their embeddings", fontsize=8)
    _save(fig, out)
    return [(wv, x, y) for wv, (x, y) in zip(wvs, coords)]


# --- attention ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AttentionMap:
    layer: int
    head: int
    tokens: tuple[str, ...]
    weights: torch.Tensor  # (T, T): row = query position, column = key position; rows sum to 1


@torch.inference_mode()
def attention(run: LoadedRun, text: str, *, layer: int, head: int) -> AttentionMap:
    """The softmax attention weights of one head of one layer over the tokens of ``text``.

    SDPA does not return its weights, so we capture the layer's normalised input with a hook and
    recompute softmax(q·kᵀ/√d + causal mask) for that head from the same projections and RoPE.
    """
    cfg = run.config
    if not 0 <= layer < cfg.n_layer:
        raise InputError(f"--layer must be in 0..{cfg.n_layer - 1}, got {layer}")
    if not 0 <= head < cfg.n_head:
        raise InputError(f"--head must be in 0..{cfg.n_head - 1}, got {head}")
    ids = _context(run, text)
    attn = run.model.layers[layer].attn
    captured: dict[str, torch.Tensor] = {}

    def grab(_module: torch.nn.Module, args: tuple) -> None:
        captured["x"], captured["cos"], captured["sin"] = args[0], args[1], args[2]

    handle = attn.register_forward_pre_hook(grab)
    try:
        run.model(torch.tensor([ids], device=run.device))
    finally:
        handle.remove()
    x, cos, sin = captured["x"], captured["cos"], captured["sin"]  # (1, T, C), (T, D), (T, D)
    T, D = len(ids), cfg.head_dim
    kv_head = head // (cfg.n_head // cfg.n_kv_head)  # type: ignore[operator]
    q = attn.q_proj(x).view(1, T, cfg.n_head, D)[:, :, head].unsqueeze(1)    # (1, 1, T, D)
    k = attn.k_proj(x).view(1, T, cfg.n_kv_head, D)[:, :, kv_head].unsqueeze(1)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    scores = (q @ k.transpose(-1, -2))[0, 0].float() / math.sqrt(D)      # (T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=scores.device).tril()
    weights = scores.masked_fill(~causal, -math.inf).softmax(-1)
    return AttentionMap(layer, head, tuple(token_text(run, i) for i in ids), weights.cpu())


def plot_attention(amap: AttentionMap, out: Path, title: str = "") -> None:
    """A heatmap of the weights with the tokens on both axes (keys across, queries down)."""
    plt = _pyplot()
    T = len(amap.tokens)
    size = min(4 + 0.25 * T, 24)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(amap.weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    step = max(1, math.ceil(T / 80))  # beyond ~80 labels they overlap: label every n-th token
    ticks = list(range(0, T, step))
    labels = [show_token(amap.tokens[i]) for i in ticks]
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("key (attended-to token)")
    ax.set_ylabel("query (predicting after this token)")
    ax.set_title(title or f"layer {amap.layer}, head {amap.head}")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    _save(fig, out)


# Fonts with Chinese glyphs, by the family names their packages install (Linux, macOS, Windows).
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC",
                 "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", "AR PL UMing CN",
                 "PingFang SC", "Hiragino Sans GB", "Heiti SC", "Microsoft YaHei", "SimHei")


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib
    matplotlib.use("Agg")  # files only, no display; safe on servers and in tests
    import matplotlib.pyplot as plt
    from matplotlib import font_manager
    # DejaVu Sans has no Chinese: tick labels of Chinese tokens would be empty boxes. Matplotlib
    # falls back glyph by glyph along font.family, so installed CJK fonts go after it.
    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [f for f in _CJK_FAMILIES if f in installed]
    plt.rcParams["font.family"] = ["DejaVu Sans", *cjk]
    return plt


def _warn_missing_glyphs(caught: list[warnings.WarningMessage]) -> None:
    """One line for all the glyphs matplotlib found no font for (it warns once per character);
    other warnings are passed on."""
    missing = [w for w in caught if "missing from font" in str(w.message)]
    for w in caught:
        if w not in missing:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if missing:
        import matplotlib
        log.warning("%d characters have no glyph in the installed fonts and show as boxes in the plot; for "
                    "Chinese install a CJK font (Debian: apt-get install fonts-noto-cjk), then delete "
                    "matplotlib's font list %s/fontlist-*.json so that it is found",
                    len({str(w.message) for w in missing}), matplotlib.get_cachedir())


def _save(fig, out: Path) -> None:  # type: ignore[no-untyped-def]
    from gristmill.infra.plots import save_png  # matplotlib: only when a plot is drawn

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.tight_layout()
            save_png(fig, out, dpi=120)  # refuses a file, link or folder that is not its own PNG
        _warn_missing_glyphs(caught)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot write plot {out}: {e}") from None
    finally:
        fig.clf()
        import matplotlib.pyplot as plt
        plt.close(fig)
