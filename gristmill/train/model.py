"""A GPT-style decoder: token embedding, RoPE, pre-norm RMSNorm, causal attention, SwiGLU.

The architecture is Llama's, so that ``gristmill export hf`` is a rename of parameters and not
surgery:

* parameter names follow transformers' ``LlamaForCausalLM`` once ``model.`` is prefixed and the
  block sub-modules are renamed (``attn`` -> ``self_attn``, ``attn_norm`` -> ``input_layernorm``,
  ``mlp_norm`` -> ``post_attention_layernorm``); see ``gristmill.train.export``;
* RoPE uses the "rotate half" convention (the two halves of each head, not interleaved pairs),
  which is the one transformers applies to Llama weights, so no permutation of q/k is needed.

Shapes in comments: B batch, T time (this call), S keys attended (cache + this call),
H query heads, K key/value heads, D head dim, C d_model, V vocab, F ffn hidden.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gristmill.errors import FieldError

# d_model, n_layer, n_head for the named sizes; vocab and context come from the data.
_NAMED: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 2, "n_head": 4, "d_model": 64},        # unit tests, seconds on CPU
    "mini": {"n_layer": 4, "n_head": 4, "d_model": 256},       # the CPU demo
    "small": {"n_layer": 12, "n_head": 12, "d_model": 768},    # ~124M with a 50k vocab (GPT-2 small)
    "medium": {"n_layer": 24, "n_head": 16, "d_model": 1024},  # ~350M
    "large": {"n_layer": 36, "n_head": 20, "d_model": 1280},   # ~774M
}
FFN_MULTIPLE = 64  # SwiGLU hidden size is rounded up to this, for matmul-friendly shapes
# Upper bounds far above any model this project trains, so that a mistyped or edited config
# (``model.json`` is read from disk) fails at once instead of allocating until memory runs out;
# max_seq_len also sizes the RoPE tables, which no weight file describes.
_CAPS = {"vocab_size": 1 << 24, "n_layer": 1024, "n_head": 1024, "n_kv_head": 1024, "d_model": 1 << 16,
         "max_seq_len": 1 << 20, "ffn_hidden": 1 << 20}


def default_ffn_hidden(d_model: int) -> int:
    """SwiGLU hidden size with the same parameter count as a 4·d GELU MLP: 8/3·d, rounded up."""
    hidden = int(8 * d_model / 3)
    return FFN_MULTIPLE * math.ceil(hidden / FFN_MULTIPLE)


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelConfig:
    """Shape of the model. ``n_kv_head`` and ``ffn_hidden`` default (``None``) to ``n_head`` and
    :func:`default_ffn_hidden`; after construction they always hold the resolved integers."""

    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None   # < n_head: grouped-query attention
    d_model: int = 768
    max_seq_len: int = 1024
    ffn_hidden: int | None = None
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            object.__setattr__(self, "n_kv_head", self.n_head)
        if self.ffn_hidden is None:
            object.__setattr__(self, "ffn_hidden", default_ffn_hidden(self.d_model))
        for name, cap in _CAPS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FieldError(name, f"{name} must be a positive integer, got {value!r}")
            if value > cap:
                raise FieldError(name, f"{name} must be at most {cap:,}, got {value:,}")
        if self.d_model % self.n_head:
            raise FieldError("d_model", f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if self.head_dim % 2:
            raise FieldError("d_model", f"head dim d_model/n_head = {self.head_dim} must be even for RoPE")
        if self.n_head % self.n_kv_head:  # type: ignore[operator]
            raise FieldError("n_kv_head",
                             f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        for name in ("rope_theta", "norm_eps", "init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise FieldError(name, f"{name} must be > 0 and finite, got {value!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise FieldError("tie_embeddings", f"tie_embeddings must be true or false, got {self.tie_embeddings!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @classmethod
    def named(cls, name: str, vocab_size: int, max_seq_len: int, **overrides: Any) -> ModelConfig:
        """A named size (``tiny``, ``mini``, ``small``, ``medium``, ``large``) for a given vocab and context."""
        if name not in _NAMED:
            raise ValueError(f"unknown model size {name!r} (known: {', '.join(_NAMED)})")
        return cls(**{**_NAMED[name], "vocab_size": vocab_size, "max_seq_len": max_seq_len, **overrides})

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(_NAMED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (what ``RUN/model.json`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ``ValueError`` naming the key."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config key {unknown[0]!r}")
        return cls(**values)


class KVCache:
    """Keys and values of past positions, one (B, K, T_max, D) buffer pair per layer.

    The cache does not track a length: ``GPT.forward(..., kv_cache=cache, start_pos=p)`` writes the
    new positions at ``[p, p+T)`` and attends to ``[0, p+T)``, so the caller owns the position.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int | None = None, *,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> None:
        self.max_len = max_len or config.max_seq_len
        if self.max_len > config.max_seq_len:
            raise ValueError(f"cache length {self.max_len} exceeds max_seq_len {config.max_seq_len}")
        shape = (batch_size, config.n_kv_head, self.max_len, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]

    def update(self, layer: int, start_pos: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, K, T, D) at ``start_pos`` and return all keys/values so far (B, K, S, D)."""
        end = start_pos + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache full: position {end} > cache length {self.max_len}")
        self.k[layer][:, :, start_pos:end] = k
        self.v[layer][:, :, start_pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def rope_tables(head_dim: int, max_len: int, theta: float, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (max_len, D) for the rotate-half RoPE: frequency i is used by dims i and i+D/2."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32, device=device), inv_freq)  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, D) by the angles in cos/sin (T, D): pairs are (x[i], x[i + D/2])."""
    half = x.size(-1) // 2
    # (-x2)·sin == x2·(-sin) exactly, so the sign moves onto the small (T, D) table: one
    # elementwise pass over x fewer than negating the half of x.
    sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
    swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + swapped * sin).type_as(x)


def linears(x: torch.Tensor, *layers: nn.Linear) -> list[torch.Tensor]:
    """``[layer(x) for layer in layers]`` for bias-free layers, as one matmul when training.

    Concatenating the weights copies them once per call: cheap against a training batch (and one
    big matmul beats several small ones on CPU), not against decoding a token at a time, where
    the weights are read once anyway. The parameters stay separate, with their Llama names.
    """
    if not torch.is_grad_enabled():
        return [layer(x) for layer in layers]
    fused = F.linear(x, torch.cat([layer.weight for layer in layers]))  # (..., sum of out_features)
    return list(fused.split([layer.out_features for layer in layers], dim=-1))


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 so bf16 activations keep their precision."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.float32:
            # the same formula as below in one fused op (fewer passes over x, forward and backward)
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.type_as(x)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        assert self.n_kv_head is not None
        self.q_proj = nn.Linear(config.d_model, self.n_head * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.d_model, self.n_kv_head * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.d_model, self.n_kv_head * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                kv_cache: KVCache | None, layer: int, start_pos: int) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = linears(x, self.q_proj, self.k_proj, self.v_proj)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)     # (B, H, T, D)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, K, T, D)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, K, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, start_pos, k, v)  # (B, K, S, D)
        if self.n_kv_head != self.n_head:
            # query head h reads kv head h // (H/K), as in transformers' repeat_kv
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)  # (B, H, S, D)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        # is_causal aligns the triangle top-left, right only when queries and keys start together
        causal = mask is None and T > 1
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        assert config.ffn_hidden is not None
        self.gate_proj = nn.Linear(config.d_model, config.ffn_hidden, bias=False)
        self.up_proj = nn.Linear(config.d_model, config.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(config.ffn_hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = linears(x, self.gate_proj, self.up_proj)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                kv_cache: KVCache | None, layer: int, start_pos: int) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, kv_cache, layer, start_pos)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    """The decoder. ``GPT(config)`` is initialised; on the meta device call :meth:`init_weights`
    after ``to_empty`` (it also rebuilds the RoPE tables, which are not in the state dict)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        # Tied: the output projection reads embed_tokens.weight, so there is one tensor and one key.
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)  # (max_seq_len, D)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Normal(0, init_std) weights; residual projections (o_proj, down_proj) scaled by
        1/sqrt(2·n_layer) so the residual stream's variance does not grow with depth; norms at 1."""
        cfg = self.config
        self.init_rope()
        nn.init.normal_(self.embed_tokens.weight, std=cfg.init_std)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=cfg.init_std)
        residual_std = cfg.init_std / math.sqrt(2 * cfg.n_layer)
        for block in self.layers:
            for lin in (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.mlp.gate_proj, block.mlp.up_proj):
                nn.init.normal_(lin.weight, std=cfg.init_std)
            for lin in (block.attn.o_proj, block.mlp.down_proj):
                nn.init.normal_(lin.weight, std=residual_std)
            nn.init.ones_(block.attn_norm.weight)
            nn.init.ones_(block.mlp_norm.weight)
        nn.init.ones_(self.norm.weight)

    def init_rope(self) -> None:
        """(Re)compute the float32 RoPE tables on the model's device (they are not saved)."""
        cfg = self.config
        device = self.embed_tokens.weight.device
        self.rope_cos, self.rope_sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta, device=device)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                segment_ids: torch.Tensor | None = None, kv_cache: KVCache | None = None,
                start_pos: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for token ids ``idx`` (B, T), and the mean cross-entropy against
        ``targets`` (B, T) when given (``-100`` = ignored position).

        ``segment_ids`` (B, T): tokens attend only to earlier tokens with the same id (packed
        documents). ``kv_cache`` + ``start_pos``: incremental decoding from position ``start_pos``.
        """
        B, T = idx.shape
        end = start_pos + T
        if end > self.config.max_seq_len:
            raise ValueError(f"sequence of {end} positions exceeds max_seq_len {self.config.max_seq_len}")
        if segment_ids is not None and (kv_cache is not None or start_pos):
            raise ValueError("segment_ids cannot be combined with kv_cache/start_pos")
        cos, sin = self.rope_cos[start_pos:end], self.rope_sin[start_pos:end]  # (T, D)
        mask = self._mask(segment_ids, T, start_pos, idx.device)
        x = self.embed_tokens(idx)  # (B, T, C)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, mask, kv_cache, i, start_pos)
        x = self.norm(x)
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.embed_tokens.weight)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    @staticmethod
    def _mask(segment_ids: torch.Tensor | None, T: int, start_pos: int, device: torch.device) -> torch.Tensor | None:
        """A boolean attention mask (True = may attend), or None when ``is_causal`` suffices."""
        if segment_ids is not None:
            causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T)
            same = segment_ids[:, :, None] == segment_ids[:, None, :]         # (B, T, T)
            return (same & causal)[:, None]                                    # (B, 1, T, T)
        if start_pos and T > 1:
            # query i sits at position start_pos + i and sees keys 0 .. start_pos + i
            q_pos = torch.arange(start_pos, start_pos + T, device=device)[:, None]
            return torch.arange(start_pos + T, device=device)[None, :] <= q_pos  # (T, S)
        return None

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; ``exclude_embeddings`` drops the token-embedding table (the untied
        output projection, a real matmul, stays counted)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed_tokens.weight.numel() if exclude_embeddings else n

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward) at context ``seq_len``:

            6·N + 12·n_layer·d_model·seq_len

        N counts the weights used in matmuls (everything but the embedding lookup; the output
        projection counts even when tied). 6 = 2 (multiply-add) × 3 (forward + 2× backward).
        The second term is attention's QKᵀ and AV products (2·2·T·d per layer and token, ×3), with
        the full T×T square as in PaLM's MFU definition (causal masking is not subtracted).
        """
        cfg = self.config
        n = self.num_params(exclude_embeddings=True) + cfg.vocab_size * cfg.d_model * cfg.tie_embeddings
        return 6 * n + 12 * cfg.n_layer * cfg.d_model * seq_len
