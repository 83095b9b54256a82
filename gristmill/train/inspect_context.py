"""``gristmill inspect context``: how a word's vector changes with the sentence around it.

Layer 0 is the token embedding — a lookup, the same row whatever the sentence ("bank" by a
river and "bank" of a city are one vector). Each transformer block adds what attention read from
the context, so the hidden states of the same word drift apart layer by layer. We compare each
sentence's hidden state with the **first** sentence's (cosine similarity), at every layer.

A word that is several tokens is represented by the mean of its tokens' hidden states. Each
sentence is fed after the end-of-text token, as every document was in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gristmill.errors import InputError
from gristmill.train.inspect import token_text
from gristmill.train.run import LoadedRun


@dataclass(frozen=True, slots=True)
class WordInContext:
    sentence: str
    token_ids: tuple[int, ...]   # the tokens of the word in this sentence
    tokens: tuple[str, ...]
    states: torch.Tensor         # (n_layer + 1, C): embedding, then the output of each block


@dataclass(frozen=True, slots=True)
class ContextReport:
    word: str
    found: tuple[WordInContext, ...]
    cosine: torch.Tensor         # (n_layer + 1, n_sentences): vs the first sentence; column 0 is 1.0

    def to_dict(self) -> dict:
        return {"word": self.word, "compared_with": "first sentence",
                "sentences": [{"sentence": w.sentence, "token_ids": list(w.token_ids), "tokens": list(w.tokens)}
                              for w in self.found],
                "layers": [{"layer": i, "kind": "embedding" if i == 0 else f"block {i}",
                            "cosine": [round(float(c), 6) for c in row]}
                           for i, row in enumerate(self.cosine)]}


def word_span(run: LoadedRun, sentence: str, word: str) -> tuple[list[int], list[int]]:
    """(ids of the sentence after EOS, positions of ``word``'s tokens in it). The word's first
    occurrence; every token overlapping its characters belongs to it."""
    at = sentence.find(word)
    if not word.strip() or at < 0:
        raise InputError(f"{word!r} is not in the sentence {sentence!r}")
    enc = run.tokenizer.encode(sentence, add_special_tokens=False)
    end = at + len(word)
    positions = [i + 1 for i, (a, b) in enumerate(enc.offsets) if a < end and b > at and b > a]
    if not positions:
        raise InputError(f"{word!r} is not in the sentence {sentence!r}")
    return [run.eos_id] + enc.ids, positions


@torch.inference_mode()
def hidden_states(run: LoadedRun, ids: list[int]) -> torch.Tensor:
    """(n_layer + 1, T, C): the embedding output, then the residual stream after each block."""
    if len(ids) > run.config.max_seq_len:
        raise InputError(f"sentence is {len(ids)} tokens; the model's context is {run.config.max_seq_len}")
    captured: list[torch.Tensor] = []
    hooks = [run.model.embed_tokens.register_forward_hook(lambda _m, _a, out: captured.append(out[0].float()))]
    hooks += [b.register_forward_hook(lambda _m, _a, out: captured.append(out[0].float()))
              for b in run.model.layers]
    try:
        run.model(torch.tensor([ids], device=run.device))
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(captured).cpu()


def context(run: LoadedRun, word: str, sentences: list[str]) -> ContextReport:
    """The cosine similarity, at each layer, of ``word``'s hidden state in each sentence with
    its hidden state in the first sentence."""
    if len(sentences) < 2:
        raise InputError("give at least two sentences (--in \"...\" --in \"...\")")
    found = []
    for s in sentences:
        ids, pos = word_span(run, s, word)
        states = hidden_states(run, ids)[:, pos].mean(1)  # (L+1, C)
        tok = tuple(ids[p] for p in pos)
        found.append(WordInContext(s, tok, tuple(token_text(run, i) for i in tok), states))
    ref = found[0].states
    cos = torch.stack([torch.nn.functional.cosine_similarity(w.states, ref, dim=-1) for w in found], dim=1)
    return ContextReport(word, tuple(found), cos)


def plot_context(rep: ContextReport, out: Path, title: str = "") -> None:
    """One line per sentence (after the first): cosine with the first sentence against layer."""
    from gristmill.train.inspect import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    layers = list(range(rep.cosine.size(0)))
    for j, w in enumerate(rep.found[1:], start=1):
        label = w.sentence if len(w.sentence) <= 50 else w.sentence[:47] + "…"
        ax.plot(layers, rep.cosine[:, j].tolist(), marker="o", label=label)
    ax.set_xticks(layers, ["emb"] + [str(i) for i in layers[1:]])
    ax.set_xlabel("layer (emb = static token embedding)")
    ax.set_ylabel("cosine with the first sentence")
    ax.set_ylim(min(-0.05, float(rep.cosine.min()) - 0.05), 1.05)
    ax.set_title(title or f"{rep.word!r} in context, vs {rep.found[0].sentence[:40]!r}")
    ax.legend(fontsize=8)
    _save(fig, out)
