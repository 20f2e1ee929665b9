"""MaskGIT's class-conditional transformer (github.com/google-research/maskgit) in PyTorch.

A bidirectional BERT-style encoder, post-LN, over `[class token, image ids...]`:
- vocabulary = codebook ids, then one id per class (class token = label + codebook_size), then
  the mask id (the last row; the official code feeds -1, which its lookup wraps to that row);
- x = LN(word[ids] + pos[0..L-1]); each layer x = LN(x + attn(x)); x = LN(x + mlp(x));
- attention: 16 heads, q/k/v/out dense layers with bias, q scaled by 1/sqrt(head dim) first;
- GELU in its tanh form (jax.nn.gelu's default), LayerNorm eps 1e-12 everywhere;
- MLM head: LN(GELU(dense(x))) @ word_embeddings^T + bias (tied to the input embedding).

Image ids are in row-major raster order of the token grid; position 0 is the class token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-12


@dataclass(frozen=True)
class MaskGitConfig:
    grid: int = 16  # tokens per side: 16 at 256 px, 32 at 512 px
    codebook_size: int = 1024
    num_classes: int = 1000
    hidden: int = 768
    layers: int = 24
    heads: int = 16
    mlp: int = 3072

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_classes + 1

    @property
    def mask_row(self) -> int:
        """The embedding row of the mask token (the official id -1 wraps to it)."""
        return self.vocab_size - 1

    @property
    def seq_len(self) -> int:
        """Image tokens + the class token."""
        return self.grid * self.grid + 1


def _ln(width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, eps=LN_EPS)


class Attention(nn.Module):
    def __init__(self, cfg: MaskGitConfig):
        super().__init__()
        self.heads = cfg.heads
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        d = c // self.heads
        # features are head-major (h * d + i), as the official [in, heads, dim] kernels flatten
        q = self.query(x).view(b, n, self.heads, d).transpose(1, 2) / math.sqrt(d)
        k = self.key(x).view(b, n, self.heads, d).transpose(1, 2)
        v = self.value(x).view(b, n, self.heads, d).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, n, c))


class Layer(nn.Module):
    def __init__(self, cfg: MaskGitConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.attention_ln = _ln(cfg.hidden)
        self.intermediate = nn.Linear(cfg.hidden, cfg.mlp)
        self.output = nn.Linear(cfg.mlp, cfg.hidden)
        self.output_ln = _ln(cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention_ln(x + self.attention(x))
        h = self.output(F.gelu(self.intermediate(x), approximate="tanh"))
        return self.output_ln(x + h)


class MaskGitTransformer(nn.Module):
    def __init__(self, cfg: MaskGitConfig = MaskGitConfig()):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position_embeddings = nn.Embedding(cfg.seq_len, cfg.hidden)
        self.embeddings_ln = _ln(cfg.hidden)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.layers))
        self.mlm_dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.mlm_ln = _ln(cfg.hidden)
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def sequence(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Image ids [B,N] (mask = the mask row) + labels [B] -> the official [B,N+1] input."""
        return torch.cat([(labels + self.cfg.codebook_size)[:, None], tokens], dim=1)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """[B,L] ids (the official sequence; -1 = mask) -> [B,L,hidden] last-layer states."""
        ids = torch.where(ids < 0, ids + self.cfg.vocab_size, ids)  # -1 -> the mask row
        pos = self.position_embeddings.weight[: ids.shape[1]]
        x = self.embeddings_ln(self.word_embeddings(ids) + pos[None])
        for layer in self.layers:
            x = layer(x)
        return x

    def head(self, x: torch.Tensor, columns: int | None = None) -> torch.Tensor:
        """MLM head on last-layer states: [..., hidden] -> logits over the first `columns`
        vocabulary entries (all by default)."""
        h = self.mlm_ln(F.gelu(self.mlm_dense(x), approximate="tanh"))
        return h @ self.word_embeddings.weight[:columns].t() + self.mlm_bias[:columns]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[B,L] ids -> [B,L,vocab] logits, exactly the official transformer's output."""
        return self.head(self.hidden(ids))


class MaskGitExport(nn.Module):
    """transformer.onnx: tokens [B,N] (mask = the mask row) + class_ids [B] -> logits over the
    codebook [B,N,K] at the image positions."""

    def __init__(self, model: MaskGitTransformer):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        states = self.model.hidden(self.model.sequence(tokens, class_ids))[:, 1:]
        return self.model.head(states, self.model.cfg.codebook_size)


class MaskGitFeatures(nn.Module):
    """features.onnx: tokens [B,N] -> [B,hidden], the last-layer states averaged over the image
    positions. The class position holds the mask row ("class unknown"): features do not
    depend on a class the caller would have to choose."""

    def __init__(self, model: MaskGitTransformer):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        unknown = torch.full_like(tokens[:, :1], self.model.cfg.mask_row)
        return self.model.hidden(torch.cat([unknown, tokens], dim=1))[:, 1:].mean(1)
