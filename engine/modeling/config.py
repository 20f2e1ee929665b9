"""Model configurations: the official MAGE variants exactly, and our own smaller family.

The same modules serve both. The official variants keep every quirk of the released weights
(github.com/LTH14/mage, models_mage.py); our own models switch on the options they need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class VqganConfig:
    image_size: int = 256
    ch: int = 128  # base width; level l has ch * ch_mult[l] channels
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # len(ch_mult) - 1 halvings: 256 px -> 16 tokens
    num_res_blocks: int = 2
    z_channels: int = 256  # encoder output / decoder input width
    codebook_size: int = 1024
    # Own tokenizers look codes up in a small l2-normalised space (factorised codes keep far more
    # of the codebook alive); None = the official plain Euclidean lookup at z_channels.
    codebook_dim: int | None = None

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid(self) -> int:
        return self.image_size // self.downsample

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MageConfig:
    grid: int = 16  # tokens per side; sequence = grid**2 + 1 class token
    codebook_size: int = 1024
    num_class_slots: int = 1000  # vocabulary rows between the codebook and the mask token
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 768
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    # Official weights feed one fixed "fake class" slot (id 1100 = 1024 + 76) for every image.
    # None = class-conditional: the class id is an input; slot num_class_slots - 1 = null class.
    fixed_class_slot: int | None = 76
    # Keep the parameters the official checkpoints carry but never use (cls_token, pos_embed,
    # mask_token, decoder_pos_embed, patch_embed, decoder_pred) so they load strictly.
    official_layout: bool = True
    image_size: int = 256  # only sizes the unused official tables
    mask_ratio_min: float = 0.5
    mask_ratio_max: float = 1.0
    mask_ratio_mu: float = 0.55
    mask_ratio_std: float = 0.25

    @property
    def seq_len(self) -> int:
        return self.grid * self.grid

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_class_slots + 1

    @property
    def mask_token_id(self) -> int:
        return self.vocab_size - 1

    @property
    def null_class_id(self) -> int | None:
        return None if self.fixed_class_slot is not None else self.num_class_slots - 1

    def to_dict(self) -> dict:
        return asdict(self)


VQGAN_OFFICIAL = VqganConfig()

MAGE_VIT_BASE = MageConfig()
MAGE_VIT_LARGE = MageConfig(
    embed_dim=1024,
    depth=24,
    num_heads=16,
    decoder_embed_dim=1024,
    decoder_depth=8,
    decoder_num_heads=16,
)


@dataclass(frozen=True)
class OwnModelConfig:
    """A model of our own family: tokenizer + class-conditional transformer."""

    vqgan: VqganConfig = field(
        default_factory=lambda: VqganConfig(
            image_size=128,
            ch=64,
            ch_mult=(1, 2, 2, 4),
            z_channels=128,
            codebook_size=1024,
            codebook_dim=16,
        )
    )
    num_classes: int = 0  # 0 = unconditional (still one null slot)

    def mage(self, **overrides) -> MageConfig:
        base: dict[str, Any] = dict(
            grid=self.vqgan.grid,
            codebook_size=self.vqgan.codebook_size,
            num_class_slots=self.num_classes + 1,
            embed_dim=256,
            depth=6,
            num_heads=8,
            decoder_embed_dim=256,
            decoder_depth=2,
            decoder_num_heads=8,
            fixed_class_slot=None,
            official_layout=False,
            image_size=self.vqgan.image_size,
        )
        base.update(overrides)
        return MageConfig(**base)
