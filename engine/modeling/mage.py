"""MAGE ViT encoder-decoder (Li et al., arXiv 2211.09117; github.com/LTH14/mage, models_mage.py).

One module covers the official `mage_vit_base_patch16` / `mage_vit_large_patch16` (strict
loading of every key, eps 1e-6 / 1e-5, tied MLM head, fixed class id 1100, mask id 2024) and our
own class-conditional family (class id at sequence position 0, a null class, no unused tables).

Sequence layout: position 0 holds a class-slot token (codebook_size + slot), positions 1..N the
image tokens in raster order; unknown image tokens hold mask_token_id (the last vocabulary row).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.modeling.config import MageConfig


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, T, head_dim)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        y = y.transpose(1, 2).reshape(b, t, c)
        return F.dropout(self.proj(y), drop, self.training)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.gelu(self.fc1(x)), self.dropout, self.training)  # exact (erf) GELU
        return F.dropout(self.fc2(x), self.dropout, self.training)


class Block(nn.Module):
    """Pre-LN transformer block with timm names (norm1, attn, norm2, mlp)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BertEmbeddings(nn.Module):
    """Word + learned position embedding, LayerNorm, dropout (names kept from the JAX port)."""

    position_ids: torch.Tensor  # a buffer

    def __init__(self, vocab_size: int, dim: int, max_positions: int, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, dim)
        self.position_embeddings = nn.Embedding(max_positions, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("position_ids", torch.arange(max_positions).unsqueeze(0))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B,T) -> (B,T,D)
        pos = self.position_embeddings(self.position_ids[:, : ids.shape[1]])
        return self.dropout(self.LayerNorm(self.word_embeddings(ids) + pos))


class MlmLayer(nn.Module):
    """Logits = LN(GELU(fc(h))) @ word_embeddings.T + bias (tied; LN keeps the default eps)."""

    def __init__(self, decoder_dim: int, dim: int, vocab_size: int):
        super().__init__()
        self.fc = nn.Linear(decoder_dim, dim)
        self.gelu = nn.GELU()
        self.ln = nn.LayerNorm(dim)  # eps 1e-5, unlike every other norm
        self.bias = nn.Parameter(torch.zeros(1, 1, vocab_size))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        h = self.ln(self.gelu(self.fc(h)))
        return h @ word_embeddings.detach().t() + self.bias


class MAGE(nn.Module):
    def __init__(self, cfg: MageConfig):
        super().__init__()
        self.cfg = cfg
        d, dd, t = cfg.embed_dim, cfg.decoder_embed_dim, cfg.seq_len + 1
        if cfg.official_layout:  # present in the released weights, unused by the forward pass
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
            self.pos_embed = nn.Parameter(torch.zeros(1, t, d), requires_grad=False)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
            self.decoder_pos_embed = nn.Parameter(torch.zeros(1, t, dd), requires_grad=False)
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, t, dd))
        self.token_emb = BertEmbeddings(cfg.vocab_size, d, t, cfg.dropout)
        if cfg.official_layout:
            patch = cfg.image_size // cfg.grid
            self.patch_embed = nn.Module()
            self.patch_embed.proj = nn.Conv2d(3, d, patch, stride=patch)
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.decoder_embed = nn.Linear(d, dd)
        self.decoder_blocks = nn.ModuleList(
            Block(dd, cfg.decoder_num_heads, cfg.mlp_ratio, cfg.dropout)
            for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        if cfg.official_layout:
            self.decoder_pred = nn.Linear(dd, patch * patch * 3)
        self.mlm_layer = MlmLayer(dd, d, cfg.vocab_size)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.normal_(self.decoder_pos_embed_learned, std=0.02)

    # -- sequence helpers ---------------------------------------------------------------------

    def class_tokens(self, batch: int, class_ids: torch.Tensor | None, device) -> torch.Tensor:
        """(B,1) vocabulary ids for position 0: the fixed slot, or codebook_size + class id."""
        cfg = self.cfg
        if cfg.fixed_class_slot is not None:
            return torch.full(
                (batch, 1),
                cfg.codebook_size + cfg.fixed_class_slot,
                dtype=torch.long,
                device=device,
            )
        if class_ids is None:
            class_ids = torch.full(
                (batch,), cfg.num_class_slots - 1, dtype=torch.long, device=device
            )
        return (class_ids.long() + cfg.codebook_size).reshape(batch, 1)

    def encode(
        self,
        tokens: torch.Tensor,
        class_ids: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encoder over [class] + tokens. `keep` (B,T') gathers the positions not dropped.

        Returns the encoder output before the final norm (B,T or T',D): `decode` applies
        `self.norm`; the recognition `features` average it without."""
        seq = torch.cat([self.class_tokens(tokens.shape[0], class_ids, tokens.device), tokens], 1)
        x = self.token_emb(seq)  # positions are added before dropping
        if keep is not None:
            x = torch.gather(x, 1, keep[..., None].expand(-1, -1, x.shape[-1]))
        for block in self.blocks:
            x = block(x)
        return x

    def decode(
        self, x: torch.Tensor, masked: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder: encoder output (normed here first) -> logits (B,T,vocab).

        Every masked (or dropped) slot is filled with the class-token output, as the official
        model does (`mask_token` is never used). `masked` is (B,N) over image positions."""
        x = self.decoder_embed(self.norm(x))
        b, t = masked.shape[0], masked.shape[1] + 1
        cls = x[:, :1]
        if keep is not None:  # scatter kept positions back; dropped ones stay class output
            full = cls.expand(b, t, x.shape[-1]).clone()
            x = full.scatter(1, keep[..., None].expand(-1, -1, x.shape[-1]), x)
        pad = torch.cat([torch.zeros_like(masked[:, :1]), masked], 1)[..., None]
        x = torch.where(pad, cls, x) + self.decoder_pos_embed_learned
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_norm(x)
        return self.mlm_layer(x, self.token_emb.word_embeddings.weight)

    # -- inference ----------------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Inference: tokens (B,N) with mask ids -> codebook logits (B,N,codebook_size)."""
        masked = tokens == self.cfg.mask_token_id
        logits = self.decode(self.encode(tokens, class_ids), masked)
        return logits[:, 1:, : self.cfg.codebook_size]

    def features(self, tokens: torch.Tensor, class_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Recognition features: encoder output averaged over image tokens (B,D), no final norm,
        as MAGE's linear probe uses them."""
        return self.encode(tokens, class_ids)[:, 1:].mean(1)

    # -- training -----------------------------------------------------------------------------

    def sample_mask_ratio(self, generator: torch.Generator | None = None) -> float:
        """One masking ratio per iteration from the truncated Gaussian of the paper."""
        cfg = self.cfg
        lo = (cfg.mask_ratio_min - cfg.mask_ratio_mu) / cfg.mask_ratio_std
        hi = (cfg.mask_ratio_max - cfg.mask_ratio_mu) / cfg.mask_ratio_std
        # inverse-CDF sampling of a standard normal restricted to [lo, hi]
        cdf = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
        u = torch.rand((), generator=generator).item()
        p = cdf(lo) + u * (cdf(hi) - cdf(lo))
        z = math.sqrt(2) * torch.erfinv(torch.tensor(2 * p - 1, dtype=torch.float64)).item()
        return cfg.mask_ratio_mu + cfg.mask_ratio_std * z

    def forward_train(
        self,
        gt: torch.Tensor,
        class_ids: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        drop_tokens: bool = True,
        label_smoothing: float = 0.1,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masked-token loss for ground-truth ids `gt` (B,N). Returns the scalar loss.

        `noise` (B,N) replaces the per-position random draw that picks masked / dropped tokens
        (distributed training cuts it from the global batch's noise)."""
        cfg = self.cfg
        b, n = gt.shape
        r = self.sample_mask_ratio(generator) if mask_ratio is None else mask_ratio
        num_masked = min(n, math.ceil(n * r))
        num_dropped = math.ceil(n * cfg.mask_ratio_min) if drop_tokens else 0
        num_dropped = min(num_dropped, num_masked)
        if noise is None:
            noise = (
                torch.rand(b, n, generator=generator, device=gt.device)
                if generator is None
                else torch.rand(b, n, generator=generator).to(gt.device)
            )
        rank = noise.argsort(1).argsort(1)
        masked = rank < num_masked
        dropped = rank < num_dropped  # dropped is a subset of masked
        tokens = torch.where(masked, torch.full_like(gt, cfg.mask_token_id), gt)
        keep = None
        if num_dropped:
            kept = torch.cat([torch.ones_like(dropped[:, :1]), ~dropped], 1)  # class always kept
            keep = kept.float().argsort(dim=1, descending=True, stable=True)
            keep = keep[:, : n + 1 - num_dropped]
            keep = keep.sort(1).values
        logits = self.decode(self.encode(tokens, class_ids, keep), masked, keep)
        logits = logits[:, 1:, : cfg.codebook_size]
        loss = F.cross_entropy(logits[masked], gt[masked], label_smoothing=label_smoothing)
        return loss


class TransformerExport(nn.Module):
    """Export wrapper for transformer.onnx: tokens [B,N] (+ class_ids [B]) -> logits."""

    def __init__(self, model: MAGE):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, class_ids: torch.Tensor | None = None):
        return self.model(tokens, class_ids)


class FeaturesExport(nn.Module):
    def __init__(self, model: MAGE):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.features(tokens)
