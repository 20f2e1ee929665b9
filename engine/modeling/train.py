"""Train our own tokenizer and MAGE transformer; export them as a bundle.

    python main.py train tokenizer --data DIR_OR_PACK --out RUN_DIR [--minutes M | --steps N]
    python main.py train mage --data DIR_OR_PACK --tokenizer RUN_DIR/tokenizer.pt --out RUN_DIR
    python main.py train export --tokenizer T.pt --mage M.pt -o BUNDLE_DIR --name NAME

The MAGE recipe is the official pre-training one (arXiv 2211.09117, implementation details;
github.com/LTH14/mage, main_pretrain.py) scaled down. The same command under
`torchrun --nproc_per_node N` trains with DistributedDataParallel: --batch is the global batch,
and every random choice of a step (images, crops, flips, mask ratio, masked positions, class
dropout) is drawn for the global batch from (seed, step) alone, each rank taking its slice, so N
processes follow one process's loss curve. Only dropout is drawn per rank.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as tdist
from torch import nn

from engine.modeling import data as data_mod
from engine.modeling.adversarial import (
    PatchDiscriminator,
    adaptive_weight,
    frequency_loss,
    high_frequency_kept,
    hinge_d_loss,
    hinge_g_loss,
)
from engine.modeling.config import OwnModelConfig, VqganConfig
from engine.modeling.losses import (
    CodeUsage,
    psnr,
    straight_through,
    tokenize,
    tokenizer_losses,
)
from engine.modeling.mage import MAGE
from engine.modeling.masks import painted_batch, user_masks
from engine.modeling.vqgan import VQGAN
from engine.runtime.devices import DEVICES
from engine.runtime.schedule import DEFAULT_CHOICE_TEMPERATURE, DEFAULT_STEPS

log = logging.getLogger("engine.modeling.train")


# -- distributed / device -----------------------------------------------------------------------


class Dist:
    """Rank, world size and device; collectives are no-ops in a single process."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if device_arg == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available")
        if cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not tdist.is_initialized():
            tdist.init_process_group("nccl" if cuda else "gloo")
            if not cuda:  # ranks share the cores; oversubscribed threads crawl
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def slice(self, batch: int) -> tuple[int, int]:
        """This rank's rows [lo, hi) of the global batch."""
        if batch % self.world:
            raise ValueError(f"--batch {batch} is not divisible by {self.world} processes")
        per = batch // self.world
        return self.rank * per, (self.rank + 1) * per

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            tdist.all_reduce(t)
            t /= self.world
        return t

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            tdist.all_reduce(t)
        return t

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's tensor in rank order (= the global batch order)."""
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        tdist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def broadcast_int(self, value: int) -> int:
        if self.world == 1:
            return value
        t = torch.tensor([value], device=self.device)
        tdist.broadcast(t, 0)
        return int(t.item())

    def amp(self):
        """bf16 autocast on CUDA (the reference trains with AMP); fp32 on the CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


# -- checkpoints ----------------------------------------------------------------------------------


def save_atomic(obj: dict, path: Path) -> None:
    """Write beside the target and rename, so a crash never leaves half a checkpoint."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            torch.save(obj, stream)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict:
    """A checkpoint file, or for kind "tokenizer" also a bundle folder (its tokenizer is read
    back from the ONNX files and verified: engine/modeling/from_bundle.py)."""
    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file() and kind == "tokenizer":
        from engine.modeling.from_bundle import tokenizer_checkpoint

        return tokenizer_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # the refusal below says it in one line
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickles refused by weights_only, truncated or non-zip files
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ValueError(f"{path} is not a readable checkpoint: {first}") from None
    if not isinstance(ckpt, dict):
        raise ValueError(
            f"{path} is not a checkpoint of this app (it holds a {type(ckpt).__name__}, not a dict)"
        )
    if kind is not None and ckpt.get("kind") != kind:
        raise ValueError(f"{path} is a '{ckpt.get('kind')}' checkpoint, expected '{kind}'")
    return ckpt


def build_vqgan(ckpt: dict) -> VQGAN:
    cfg = dict(ckpt["config"])
    cfg["ch_mult"] = tuple(cfg["ch_mult"])
    model = VQGAN(VqganConfig(**cfg))
    model.load_state_dict(ckpt["model"])
    return model


def build_mage(ckpt: dict) -> MAGE:
    from engine.modeling.config import MageConfig

    model = MAGE(MageConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """timm's add_weight_decay: no decay on biases, norms, embeddings and position tables."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or name.endswith("bias") or "embed" in name or "embedding" in name
        (no_decay if skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warm-up, then half-cycle cosine to zero (the reference's per-iteration schedule)."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * 0.5 * (1 + math.cos(math.pi * progress))


# -- tasks ----------------------------------------------------------------------------------------


class TokenizerLoss(nn.Module):
    """The unit DDP wraps: images -> (losses, latents, ids, reconstruction)."""

    def __init__(self, vqgan: VQGAN, beta: float, edge_weight: float, amp, fft_weight: float = 0.0):
        super().__init__()
        self.vqgan, self.beta, self.edge_weight, self.amp = vqgan, beta, edge_weight, amp
        self.fft_weight = fft_weight

    def forward(self, images: torch.Tensor):
        # The decoder always sees the whole token grid: its GroupNorms take statistics over
        # the grid, so a decoded part of it is another function (an 8x8 part of the 16x16
        # grid decodes only 22 dB close to the same pixels of the whole decode), and a decoder
        # fine-tuned on parts gets worse on whole images.
        recon, e, q, ids = straight_through(self.vqgan, images, self.amp)
        losses = tokenizer_losses(images, recon, e, q, self.beta, self.edge_weight)
        if self.fft_weight:
            losses["fft"] = frequency_loss(recon, images)
            losses["loss"] = losses["loss"] + self.fft_weight * losses["fft"]
        return losses, e.detach(), ids, recon


class TokenizerTask:
    kind = "tokenizer"
    betas = (0.9, 0.99)

    def __init__(self, args, data: data_mod.Dataset, dist: Dist):
        self.args, self.data, self.dist = args, data, dist
        cfg = VqganConfig(
            image_size=args.image_size,
            ch=args.ch,
            ch_mult=tuple(args.ch_mult),
            num_res_blocks=args.res_blocks,
            z_channels=args.z_channels,
            codebook_size=args.codebook_size,
            codebook_dim=args.codebook_dim,
        )
        self.model = VQGAN(cfg).to(dist.device)
        if args.decoder_only:
            # the encoder and codebook stay fixed: every image keeps its tokens, so a
            # transformer trained on those tokens (for example a bundle's) stays valid
            self.model.encoder.requires_grad_(False)
            self.model.quantize.requires_grad_(False)
        self.loss = TokenizerLoss(
            self.model, args.beta, args.edge_weight, dist.amp, args.fft_weight
        )
        self.disc: PatchDiscriminator | None = None
        if args.adv_weight:
            self.disc = PatchDiscriminator(args.disc_ch, args.disc_layers).to(dist.device)
            self.disc_opt = torch.optim.Adam(
                self.disc.parameters(), lr=args.disc_lr, betas=(0.5, 0.9)
            )
        if self.disc is not None and cfg.image_size < self.disc.min_size():
            raise ValueError(
                f"the discriminator needs images of at least {self.disc.min_size()} px, "
                f"the model makes {cfg.image_size} px: use fewer --disc-layers"
            )
        self.usage = CodeUsage(cfg.codebook_size, dist.device)
        self.class_names = data.class_names
        self.val_images = eval_images(data.val, cfg.image_size, dist.device)
        self.total: int | None = None  # set by the Trainer once the run length is known
        self.last_step = -1  # the step last trained

    def config(self) -> dict:
        return self.model.cfg.to_dict()

    def forward(self, step: int, module: nn.Module) -> tuple[dict, tuple]:
        args = self.args
        self.last_step = step
        images, _ = train_batch(self.data, args, step, self.dist, self.model.cfg.image_size)
        losses, e, ids, recon = module(images)
        if self.disc is not None:
            losses.update(self.adversarial(step, losses["loss"], recon, images))
            losses["loss"] = losses["loss"] + losses.pop("adv_term")
        return losses, (e, ids)

    def adversarial(self, step: int, rec_loss, recon, target) -> dict[str, torch.Tensor]:
        """One discriminator step (hinge loss) on this batch, then the generator's term
        scaled by VQGAN's adaptive weight, from step --adv-start on (before it the
        discriminator learns alone, so its first verdicts are not noise)."""
        assert self.disc is not None
        self.disc.requires_grad_(True)
        real, fake = self.disc(target), self.disc(recon.detach())
        d_loss = hinge_d_loss(real, fake)
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        if self.dist.world > 1:
            for p in self.disc.parameters():
                if p.grad is not None:
                    self.dist.mean(p.grad)
        self.disc_opt.step()
        self.disc.requires_grad_(False)
        g_loss = hinge_g_loss(self.disc(recon))
        zero = torch.zeros((), device=recon.device)
        weight = zero
        if step >= self.args.adv_start:
            last = self.model.decoder.conv_out.weight
            weight = adaptive_weight(rec_loss, g_loss, last) * self.args.adv_weight
        return {
            "adv_term": weight * g_loss,
            "d_loss": d_loss.detach(),
            "g_loss": g_loss.detach(),
            "adv_weight": weight,
            "d_real": real.detach().mean(),
            "d_fake": fake.detach().mean(),
        }

    def after_step(self, step: int, optimizer, aux) -> None:
        e, ids = aux
        self.usage.counts += self.dist.sum(
            torch.bincount(ids.flatten(), minlength=len(self.usage.counts))
        )
        if self.args.decoder_only:
            return  # a fixed codebook: no restarts
        if step % self.args.restart_every == 0:  # step 0: fill the codebook from the encoder
            latents = self.dist.gather(e).permute(0, 2, 3, 1).reshape(-1, e.shape[1])
            g = data_mod.step_generator(self.args.seed, step, stream=3)
            # no restarts in the last fifth: the decoder needs time to learn the new codes
            late = self.total is not None and step >= 0.8 * self.total
            n = self.usage.restart(
                self.model.quantize.embedding.weight, latents, g, optimizer, replace=not late
            )
            if n and step > 0:
                log.debug("step %d: restarted %d unused codes", step, n)

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        scores, kept, ids = [], [], []
        for chunk in self.val_images.split(64):
            recon, _, _, i = straight_through(self.model, chunk, self.dist.amp)
            scores.append(psnr(recon, chunk))
            kept.append(high_frequency_kept(recon, chunk))
            ids.append(i.flatten())
        self.model.train()
        usage = self.usage.stats()
        return {
            "val_psnr": round(float(torch.cat(scores).mean()), 3),
            "val_hf_kept": round(float(torch.cat(kept).median()), 3),
            "train_codes_used": usage["codes_used"],
            "train_perplexity": round(usage["perplexity"], 1),
            "val_codes_used": int(torch.cat(ids).unique().numel()),
        }

    def better(self, new: dict, best: dict | None) -> bool:
        """Higher held-out PSNR; with the adversarial term, a checkpoint trained with it beats
        any from before --adv-start (PSNR alone would keep the blurrier one)."""
        if self.disc is not None and self.args.adv_start:
            on = self.last_step >= self.args.adv_start
            best_on = best is not None and best["step"] > self.args.adv_start
            if on != best_on:
                return on
        return best is None or new["val_psnr"] > best["val_psnr"]

    def state(self) -> dict:
        out = {"usage": self.usage.state_dict()}
        if self.disc is not None:
            out["disc"] = self.disc.state_dict()
            out["disc_opt"] = self.disc_opt.state_dict()
        return out

    def load_state(self, state: dict) -> None:
        self.usage.load_state_dict(state["usage"])
        if self.disc is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_opt"])

    def info(self) -> dict:
        return {}


class MageLoss(nn.Module):
    def __init__(self, mage: MAGE, label_smoothing: float):
        super().__init__()
        self.mage, self.label_smoothing = mage, label_smoothing

    def forward(self, tokens, class_ids, mask_ratio: float, noise):
        loss = self.mage.forward_train(
            tokens,
            class_ids,
            mask_ratio=mask_ratio,
            label_smoothing=self.label_smoothing,
            noise=noise,
        )
        return {"loss": loss}


class MageTask:
    kind = "mage"
    betas = (0.9, 0.95)
    EVAL_RATIOS = (0.5, 0.75, 0.9)
    EVAL_PAINTED_AREAS = (0.1, 0.3)

    def __init__(self, args, data: data_mod.Dataset, dist: Dist):
        self.args, self.data, self.dist = args, data, dist
        self.tok_ckpt = load_checkpoint(args.tokenizer, "tokenizer")
        self.vqgan = build_vqgan(self.tok_ckpt).to(dist.device).eval().requires_grad_(False)
        self.class_names = data.class_names
        own = OwnModelConfig(vqgan=self.vqgan.cfg, num_classes=len(self.class_names))
        cfg = own.mage(
            embed_dim=args.dim,
            depth=args.depth,
            num_heads=args.heads,
            decoder_embed_dim=args.decoder_dim,
            decoder_depth=args.decoder_depth,
            decoder_num_heads=args.decoder_heads,
            dropout=args.dropout,
        )
        self.model = MAGE(cfg).to(dist.device)
        self.loss = MageLoss(self.model, args.label_smoothing)
        self.val = self._eval_set(data.val)
        self.train_probe = self._eval_set(data.train, limit=64)

    def _eval_set(self, images: data_mod.ImageSet, limit: int | None = None):
        n = min(len(images), limit or len(images))
        sub = data_mod.ImageSet(
            images.images[:n], images.sizes[:n], images.labels[:n], images.names[:n]
        )
        pixels = eval_images(sub, self.vqgan.cfg.image_size, self.dist.device)
        labels = sub.labels.repeat(len(pixels) // n).to(self.dist.device)
        return tokenize(self.vqgan, pixels, self.dist.amp), labels

    def config(self) -> dict:
        return self.model.cfg.to_dict()

    def null_class(self) -> int:
        return self.model.cfg.num_class_slots - 1

    def forward(self, step: int, module: nn.Module) -> tuple[dict, tuple]:
        args, dist = self.args, self.dist
        lo, hi = dist.slice(args.batch)
        images, labels = train_batch(self.data, args, step, dist, self.vqgan.cfg.image_size)
        tokens = tokenize(self.vqgan, images, dist.amp)  # (b,N)
        g = data_mod.step_generator(args.seed, step, stream=1)
        ratio = self.model.sample_mask_ratio(g)
        noise = torch.rand(args.batch, tokens.shape[1], generator=g)  # global batch
        drop = torch.rand(args.batch, generator=g)[lo:hi] < args.class_dropout
        if args.user_masks:
            gp = data_mod.step_generator(args.seed, step, stream=5)
            if float(torch.rand((), generator=gp)) < args.user_masks:
                # this step masks holes like users paint instead of random positions
                ratio, noise = painted_batch(gp, args.batch, self.model.cfg.grid)
        noise = noise[lo:hi]  # this rank's slice
        if not self.class_names:
            drop[:] = True  # unconditional: always the null class
        # the null class at --class-dropout rate trains unconditional generation (and CFG)
        class_ids = torch.where(drop.to(dist.device), self.null_class(), labels)
        with dist.amp():
            losses = module(tokens, class_ids, ratio, noise.to(dist.device))
        return losses, ()

    def after_step(self, step: int, optimizer, aux) -> None:
        pass

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        out = {}
        for name, (tokens, labels) in (("val", self.val), ("train", self.train_probe)):
            loss, acc = self._masked_scores(tokens, labels)
            out[f"{name}_loss"], out[f"{name}_acc"] = round(loss, 4), round(acc, 4)
        loss, acc = self._masked_scores(*self.val, painted=True)
        out["val_painted_loss"], out["val_painted_acc"] = round(loss, 4), round(acc, 4)
        self.model.train()
        return out

    def _masked_scores(self, tokens, labels, painted: bool = False) -> tuple[float, float]:
        """Cross-entropy (no smoothing) and accuracy on masked tokens, inference path (no
        dropping), averaged over fixed mask ratios and fixed positions; `painted`: over holes
        like users paint (engine/modeling/masks.py) of EVAL_PAINTED_AREAS instead."""
        g = torch.Generator().manual_seed(1234)
        labels = labels if self.class_names else None
        losses, accs = [], []
        n = tokens.shape[1]
        for r in self.EVAL_PAINTED_AREAS if painted else self.EVAL_RATIOS:
            if painted:
                masks, _ = user_masks(g, len(tokens), self.model.cfg.grid, r)
                masked = masks.flatten(1).to(tokens.device)
            else:
                noise = torch.rand(tokens.shape, generator=g).to(tokens.device)
                masked = noise.argsort(1).argsort(1) < math.ceil(r * n)
            inp = torch.where(masked, self.model.cfg.mask_token_id, tokens)
            with self.dist.amp():
                logits = self.model(inp, labels).float()
            losses.append(nn.functional.cross_entropy(logits[masked], tokens[masked]).item())
            accs.append((logits[masked].argmax(-1) == tokens[masked]).float().mean().item())
        return sum(losses) / len(losses), sum(accs) / len(accs)

    def better(self, new: dict, best: dict | None) -> bool:
        return best is None or new["val_loss"] < best["val_loss"]

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def info(self) -> dict:
        return {
            "tokenizer": {
                "path": str(self.args.tokenizer),
                "config": self.tok_ckpt["config"],
                "step": self.tok_ckpt.get("step"),
                "metrics": self.tok_ckpt.get("metrics", {}),
                "train_args": self.tok_ckpt.get("train_args", {}),
            }
        }


def train_batch(data: data_mod.Dataset, args, step: int, dist: Dist, size: int):
    """This rank's slice of the global batch of `step`: (images (b,3,S,S) in [0,1], labels)."""
    params = data_mod.random_params(args.seed, step, args.batch, len(data.train))
    lo, hi = dist.slice(args.batch)
    mine = params.slice(lo, hi)
    return data_mod.crops(data.train, mine, size), data.train.labels[
        mine.index.to(data.train.labels.device)
    ]


def eval_images(images: data_mod.ImageSet, size: int, device) -> torch.Tensor:
    """Fixed held-out views: the centre crop plus 3 seeded random crops of every image."""
    images = images.to(device)
    n = len(images)
    views = [data_mod.crops(images, data_mod.center_params(n), size)]
    for k in range(3):
        params = data_mod.random_params(10_000 + k, 0, n, n)
        params.index = torch.arange(n)  # keep image order so labels line up with views
        views.append(data_mod.crops(images, params, size))
    return torch.cat(views)


# -- the loop -------------------------------------------------------------------------------------


class Trainer:
    """Optimiser, schedule, checkpoints, progress, time budget: everything both tasks share."""

    CALIBRATION_STEPS = 20  # timed steps before a --minutes run fixes its step count
    TIME_RESERVE = 0.06  # of the budget, kept for evaluations and the final checkpoint

    def __init__(self, task, args, dist: Dist):
        self.task, self.args, self.dist = task, args, dist
        self.out = Path(args.out)
        self.ckpt_path = self.out / f"{task.kind}.pt"
        self.log_path = self.out / f"log_{task.kind}.jsonl"
        self.module = task.loss
        if dist.world > 1:
            ids = [dist.device.index] if dist.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(task.loss, device_ids=ids)
        self.opt = torch.optim.AdamW(
            param_groups(task.model, args.wd), lr=args.lr, betas=task.betas
        )
        self.step, self.total, self.best, self.metrics = 0, args.steps, None, {}
        self.elapsed_before = 0.0
        self.last_eval_step = self.saved_step = -1
        self.pending: list[tuple] = []  # (step, lr, names, values) not yet logged

    # checkpoint ---------------------------------------------------------------------------------

    def payload(self, full: bool) -> dict:
        ckpt = {
            "kind": self.task.kind,
            "config": self.task.config(),
            "model": {
                k: v.detach().float().cpu() if v.is_floating_point() else v.cpu()
                for k, v in self.task.model.state_dict().items()
            },
            "class_names": list(self.task.class_names),
            "step": self.step,
            "metrics": dict(self.metrics),
            "train_args": plain_args(self.args),
            "data": self.task.data.summary(),
            "device": device_name(self.dist.device),
            "world_size": self.dist.world,
            "elapsed_s": round(self.elapsed(), 1),
            **self.task.info(),
        }
        if full:
            ckpt.update(
                optimizer=self.opt.state_dict(),
                total=self.total,
                best=self.best,
                task_state=self.task.state(),
                rng=torch.get_rng_state(),
            )
        return ckpt

    def save(self) -> None:
        if self.dist.main:
            save_atomic(self.payload(full=True), self.ckpt_path)
        self.last_save, self.saved_step = time.monotonic(), self.step

    def resume(self) -> None:
        if not self.ckpt_path.exists():
            return
        if not self.args.resume:
            raise ValueError(
                f"{self.ckpt_path} exists: pass --resume to continue it, or choose another --out"
            )
        ckpt = load_checkpoint(self.ckpt_path, self.task.kind)
        if ckpt["config"] != self.task.config():
            raise ValueError(f"{self.ckpt_path}: its model sizes differ from the flags given")
        self.task.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.task.load_state(ckpt["task_state"])
        torch.set_rng_state(ckpt["rng"])
        self.step, self.best, self.metrics = ckpt["step"], ckpt["best"], ckpt["metrics"]
        self.total = self.args.steps or ckpt["total"]  # --steps on resume extends the plan
        self.elapsed_before = ckpt.get("elapsed_s", 0.0)
        log.info("resumed %s at step %d", self.ckpt_path, self.step)

    # schedule and budget --------------------------------------------------------------------------

    def plan(self, t_first: float) -> None:
        """--minutes: time CALIBRATION_STEPS steps, then fix the total (rank 0 decides)."""
        now = time.monotonic()
        per_step = (now - t_first) / max(1, self.step - self.calib_from)
        left = self.deadline - now - self.TIME_RESERVE * self.args.minutes * 60
        total = self.step + max(1, int(left / per_step))
        self.total = self.dist.broadcast_int(total)
        log.info(
            "%s: %.3f s/step -> %d steps in %.1f min",
            self.task.kind,
            per_step,
            self.total,
            self.args.minutes,
        )

    def calibrated(self, t_first: float) -> bool:
        """Enough steps timed, or a tenth of the budget gone (slow steps)."""
        slow = time.monotonic() - t_first > 0.1 * self.args.minutes * 60
        return self.step == self.calib_from + self.CALIBRATION_STEPS or bool(
            self.dist.broadcast_int(int(slow))
        )

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t_start

    def init_weights(self) -> None:
        """--init: start a new run (fresh optimiser and schedule) from another run's weights."""
        ckpt = load_checkpoint(self.args.init, self.task.kind)
        if ckpt["config"] != self.task.config():
            raise ValueError(f"{self.args.init}: its model sizes differ from the flags given")
        self.task.model.load_state_dict(ckpt["model"])
        log.info("initialised from %s (trained %d steps)", self.args.init, ckpt["step"])

    def train(self) -> dict:
        args = self.args
        self.resume()
        if self.step == 0 and args.init:
            self.init_weights()
        self.t_start = self.last_save = self.last_log = time.monotonic()
        self.deadline = self.t_start + (args.minutes or 0) * 60
        self.calib_from, t_first = self.step + 3, None  # the first steps include warm-up work
        self.task.model.train()
        while self.total is None or self.step < self.total:
            if self.total is None and self.step == self.calib_from:
                t_first = time.monotonic()
            if self.total is None and self.step > self.calib_from and self.calibrated(t_first):
                self.plan(t_first)
                continue
            self.one_step()
            self.after(final=self.step == self.total)
            if args.stop_after and self.step >= args.stop_after:
                break
            if (
                args.minutes
                and self.step % 10 == 0
                and self.dist.broadcast_int(int(time.monotonic() > self.deadline + 30))
            ):
                log.warning("time budget exceeded: stopping at step %d", self.step)
                break
        self.flush(time.monotonic())  # stopped early: still evaluate and save
        if self.last_eval_step != self.step:
            self.evaluate()
        if self.saved_step != self.step:
            self.save()
        return self.metrics

    def one_step(self) -> None:
        args = self.args
        total = self.total or 10**9  # during calibration: warm-up only, no decay yet
        lr = lr_at(self.step, args.lr, args.warmup, total)
        for group in self.opt.param_groups:
            group["lr"] = lr
        # dropout: a function of (seed, step, rank), so resuming replays it exactly
        torch.manual_seed((args.seed * 1_000_003 + self.step) * 64 + self.dist.rank)
        self.task.total = self.total
        losses, aux = self.task.forward(self.step, self.module)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = nn.utils.clip_grad_norm_(self.task.model.parameters(), args.clip)
        self.opt.step()
        self.task.after_step(self.step, self.opt, aux)
        names = sorted(losses) + ["grad_norm"]
        values = torch.stack(
            [losses[k].detach().float() for k in names[:-1]] + [grad_norm.detach().float()]
        )
        self.pending.append((self.step, lr, names, self.dist.mean(values)))  # global means
        self.step += 1

    def after(self, final: bool) -> None:
        """Logging, evaluation and checkpoints after a step."""
        args, now = self.args, time.monotonic()
        eval_every = args.eval_every or max(1, (self.total or 10**9) // 8)
        do_eval = final or (self.total is not None and self.step % eval_every == 0)
        if do_eval or now - self.last_log > args.log_seconds:
            self.flush(now)
        if do_eval:
            self.evaluate()
        if (
            final
            or (args.ckpt_every and self.step % args.ckpt_every == 0)
            or now - self.last_save > args.ckpt_minutes * 60
        ):
            self.save()

    def flush(self, now: float) -> None:
        """Write the pending per-step losses (one device sync) and print a progress line."""
        if not self.pending:
            return
        rows = [
            {
                "step": step,
                "lr": lr,
                **{k: round(v, 6) for k, v in zip(names, values.tolist(), strict=True)},
            }
            for step, lr, names, values in self.pending
        ]
        self.append_log(rows)
        steps = len(self.pending)
        rate = steps * self.args.batch / max(1e-6, now - self.last_log)
        left = (self.total - self.step) * (now - self.last_log) / steps if self.total else 0
        log.info(
            "%s step %d/%s loss %.4f lr %.2e %.0f img/s ETA %s",
            self.task.kind,
            self.step,
            self.total or "?",
            rows[-1]["loss"],
            rows[-1]["lr"],
            rate,
            format_eta(left),
        )
        self.pending, self.last_log = [], now

    def evaluate(self) -> None:
        result = self.task.evaluate()
        self.metrics = {**result, "step": self.step}
        self.last_eval_step = self.step
        self.append_log([{"step": self.step, "eval": result}])
        log.info(
            "%s eval at step %d: %s",
            self.task.kind,
            self.step,
            ", ".join(f"{k} {v}" for k, v in result.items()),
        )
        if self.task.better(result, self.best):
            self.best = {**result, "step": self.step}
            if self.dist.main:
                save_atomic(self.payload(full=False), self.out / f"{self.task.kind}_best.pt")

    def append_log(self, rows: list[dict]) -> None:
        if self.dist.main:
            with self.log_path.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)


def format_eta(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def plain_args(args) -> dict:
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if isinstance(v, (int, float, str, bool, list, tuple, Path, type(None)))
    }


# -- commands -------------------------------------------------------------------------------------


def run_training(task_cls, args) -> int:
    if not args.minutes and not args.steps:
        raise ValueError("give a budget: --minutes M or --steps N")
    dist = Dist(args.device)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    dataset = data_mod.load_data(args.data, args.image_size)
    dataset.train = dataset.train.to(dist.device)
    log.info(
        "data: %d train / %d held-out images, %s",
        len(dataset.train),
        len(dataset.val),
        f"{len(dataset.class_names)} classes" if dataset.class_names else "unconditional",
    )
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)  # the initial weights, identical in every process
    task = task_cls(args, dataset, dist)
    n_params = sum(p.numel() for p in task.model.parameters())
    log.info(
        "%s: %.2f M parameters on %s, %d process(es), global batch %d (setup %.1f s)",
        task.kind,
        n_params / 1e6,
        device_name(dist.device),
        dist.world,
        args.batch,
        time.monotonic() - t0,
    )
    metrics = Trainer(task, args, dist).train()
    log.info("%s done: %s -> %s", task.kind, metrics, Path(args.out) / f"{task.kind}.pt")
    if dist.world > 1:
        tdist.barrier()
        tdist.destroy_process_group()
    return 0


def run_export(args) -> int:
    from engine.modeling.export import export_bundle, replace_tokenizer

    tok = load_checkpoint(args.tokenizer, "tokenizer")
    if args.from_bundle:
        details = "\n".join(training_section("Tokenizer fine-tuning", tok))
        if args.notes:
            details += "\n\n" + args.notes.read_text().strip()
        agree, diff = replace_tokenizer(
            build_vqgan(tok),
            args.from_bundle,
            args.output,
            name=args.name,
            details=details,
            overwrite=args.overwrite,
        )
        log.info("parity: tokens agree on %.2f%%, decoder max |d| = %.2e", 100 * agree, diff)
        log.info("bundle written to %s", args.output)
        return 0
    if args.mage is None:
        raise ValueError("give the transformer: --mage CHECKPOINT or --from-bundle BUNDLE")
    mage_ckpt = load_checkpoint(args.mage, "mage")
    vqgan, mage = build_vqgan(tok), build_mage(mage_ckpt)
    if (vqgan.cfg.grid, vqgan.cfg.codebook_size) != (mage.cfg.grid, mage.cfg.codebook_size):
        raise ValueError(
            "the tokenizer and the transformer do not belong together "
            "(grid or codebook size differ)"
        )
    extra = {"CREDITS.md": args.credits} if args.credits else None
    names = mage_ckpt.get("class_names") or None
    report = export_bundle(
        vqgan,
        mage,
        args.output,
        name=args.name,
        overwrite=args.overwrite,
        source=f"trained with MAGE Studio (engine/modeling/train.py) on "
        f"{mage_ckpt.get('data', {}).get('source', 'unknown data')}",
        class_names=names,
        details=card_details(tok, mage_ckpt, args.credits, args.notes),
        extra_files=extra,
        decoding={
            "steps": args.steps,
            "choice_temperature": args.choice_temperature,
            "sample_temperature": args.sample_temperature,
        },
    )
    for line in report.lines():
        log.info("parity: %s", line)
    log.info("bundle written to %s", args.output)
    return 0


def card_details(tok: dict, mage: dict, credits: Path | None, notes: Path | None) -> str:
    """MODEL_CARD.md sections: data and licences, training settings, metrics (+ notes)."""
    data = mage.get("data", {})
    lines = [
        "## Training data",
        "",
        f"- source: `{data.get('source')}`; {data.get('train_images')} training images, "
        f"{data.get('val_images')} held out (never trained on)",
    ]
    counts = data.get("counts", {})
    if isinstance(counts.get("train"), dict):
        lines.append(
            "- classes (train / held out): "
            + ", ".join(f"{c} {n}/{counts['val'].get(c, 0)}" for c, n in counts["train"].items())
        )
    if credits:
        lines.append(
            "- licences: every image's source, author and licence are listed in "
            "CREDITS.md (shipped beside this card); by image: " + licence_tally(credits)
        )
    else:
        lines.append("- licences: see the data source's own credits")
    for title, ckpt in (("Tokenizer training", tok), ("Transformer training", mage)):
        lines += [""] + training_section(title, ckpt)
    lines += [
        "",
        "Metrics: tokenizer PSNR on held-out centre + random crops at the model size; "
        "transformer cross-entropy and accuracy on masked tokens of held-out images "
        "(mask ratios 0.5 / 0.75 / 0.9, no dropping), `train_*` on 64 training images.",
    ]
    if notes:
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines)


def training_section(title: str, ckpt: dict) -> list[str]:
    """A MODEL_CARD.md section on how one checkpoint was trained."""
    a = ckpt.get("train_args", {})
    keys = (
        "batch",
        "lr",
        "warmup",
        "wd",
        "minutes",
        "steps",
        "seed",
        "beta",
        "edge_weight",
        "fft_weight",
        "adv_weight",
        "adv_start",
        "disc_lr",
        "restart_every",
        "decoder_only",
        "init",
        "class_dropout",
        "label_smoothing",
        "dropout",
        "user_masks",
    )
    settings = ", ".join(f"{k} {a[k]}" for k in keys if a.get(k) not in (None, False))
    return [
        f"## {title}",
        "",
        f"- {ckpt.get('step')} steps in {ckpt.get('elapsed_s')} s on "
        f"{ckpt.get('device')} x{ckpt.get('world_size', 1)}",
        f"- settings: {settings}",
        f"- model config: `{json.dumps(ckpt.get('config'))}`",
        f"- held-out metrics at the end: `{json.dumps(ckpt.get('metrics'))}`",
    ]


def licence_tally(credits: Path) -> str:
    """Count licences in a CREDITS.md whose entries read "- `file` <- `origin`: LICENCE, ..."."""
    counts: dict[str, int] = {}
    for line in credits.read_text().splitlines():
        if line.startswith("- `") and "`: " in line:
            name = line.rsplit("`: ", 1)[1].split(",")[0].split(" (")[0].strip()
            counts[name] = counts.get(name, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v}" for k, v in top) or "see CREDITS.md"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py train", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("tokenizer", help="train the VQGAN tokenizer")
    _common(tok, batch=64, lr=8e-4, wd=0.0, warmup=200)
    tok.add_argument("--ch", type=int, default=64, help="base conv width (multiple of 32)")
    tok.add_argument(
        "--ch-mult",
        type=_ints,
        default=(1, 1, 2, 2),
        help="width multipliers per level, comma separated (len-1 halvings)",
    )
    tok.add_argument("--res-blocks", type=int, default=1, help="ResNet blocks per level")
    tok.add_argument("--z-channels", type=int, default=128)
    tok.add_argument("--codebook-size", type=int, default=1024)
    tok.add_argument("--codebook-dim", type=int, default=16, help="factorised code dimension")
    tok.add_argument("--beta", type=float, default=0.25, help="commitment loss weight")
    tok.add_argument(
        "--edge-weight",
        type=float,
        default=0.5,
        help="weight of the image-gradient L1 (sharpness) loss",
    )
    tok.add_argument(
        "--restart-every", type=int, default=100, help="steps between dead-code restarts"
    )
    tok.add_argument(
        "--decoder-only",
        action="store_true",
        help="train only the decoder (with --init: sharpen a trained tokenizer); "
        "the encoder and codebook stay fixed, so tokens do not change and a "
        "transformer trained on them stays valid",
    )
    tok.add_argument(
        "--fft-weight",
        type=float,
        default=0.0,
        help="weight of the L1 between log amplitude spectra (a blur loses high frequencies)",
    )
    tok.add_argument(
        "--adv-weight",
        type=float,
        default=0.0,
        help="weight of the PatchGAN hinge term, scaled by VQGAN's adaptive weight (0: none)",
    )
    tok.add_argument(
        "--adv-start",
        type=int,
        default=0,
        help="step from which the adversarial term reaches the decoder "
        "(the discriminator trains from step 0)",
    )
    tok.add_argument("--disc-lr", type=float, default=1e-4, help="discriminator learning rate")
    tok.add_argument("--disc-ch", type=int, default=64, help="discriminator base width")
    tok.add_argument("--disc-layers", type=int, default=3, help="discriminator stride-2 layers")
    tok.set_defaults(func=lambda a: run_training(TokenizerTask, a))
    mg = sub.add_parser("mage", help="train the MAGE transformer on a trained tokenizer")
    _common(mg, batch=256, lr=6e-4, wd=0.05, warmup=300)
    mg.add_argument("--tokenizer", type=Path, required=True, help="tokenizer checkpoint (.pt)")
    mg.add_argument("--dim", type=int, default=256, help="encoder width")
    mg.add_argument("--depth", type=int, default=5, help="encoder blocks")
    mg.add_argument("--heads", type=int, default=8)
    mg.add_argument("--decoder-dim", type=int, default=256)
    mg.add_argument("--decoder-depth", type=int, default=2)
    mg.add_argument("--decoder-heads", type=int, default=8)
    mg.add_argument("--dropout", type=float, default=0.1)
    mg.add_argument(
        "--class-dropout",
        type=float,
        default=0.1,
        help="rate at which the null class replaces the label (unconditional + CFG)",
    )
    mg.add_argument("--label-smoothing", type=float, default=0.1)
    mg.add_argument(
        "--user-masks",
        type=float,
        default=0.0,
        help="share of steps that mask painted holes (blobs, boxes, brush strokes, "
        "object-sized) with a ring around them instead of random positions",
    )
    mg.set_defaults(func=lambda a: run_training(MageTask, a))
    ex = sub.add_parser(
        "export",
        help="write a model bundle from two checkpoints, or a "
        "bundle's copy with a fine-tuned tokenizer",
    )
    ex.add_argument("--tokenizer", type=Path, required=True)
    source = ex.add_mutually_exclusive_group(required=True)
    source.add_argument("--mage", type=Path, help="transformer checkpoint")
    source.add_argument(
        "--from-bundle",
        type=Path,
        help="keep this bundle's transformer, features, heads and credits and "
        "replace its tokenizer (one fine-tuned with --decoder-only)",
    )
    ex.add_argument("-o", "--output", type=Path, required=True, help="bundle folder")
    ex.add_argument("--name", required=True)
    ex.add_argument("--credits", type=Path, help="CREDITS.md to ship in the bundle")
    ex.add_argument("--notes", type=Path, help="markdown appended to MODEL_CARD.md")
    ex.add_argument("--overwrite", action="store_true")
    ex.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="default decoding steps")
    ex.add_argument(
        "--choice-temperature",
        type=float,
        default=DEFAULT_CHOICE_TEMPERATURE,
        help=f"default choice temperature (MAGE: {DEFAULT_CHOICE_TEMPERATURE:g})",
    )
    ex.add_argument(
        "--sample-temperature",
        type=float,
        default=1.0,
        help="default token sampling temperature (MAGE: 1.0; a small model "
        "fills holes more plausibly below 1)",
    )
    ex.set_defaults(func=run_export)
    return parser


def _common(p: argparse.ArgumentParser, batch: int, lr: float, wd: float, warmup: int) -> None:
    p.add_argument("--data", type=Path, required=True, help="image folder or .npz pack")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs)")
    p.add_argument("--image-size", type=int, default=128)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="train for this long (sets the steps)")
    budget.add_argument("--steps", type=int, help="train this many steps")
    p.add_argument("--batch", type=int, default=batch, help="global batch (all processes)")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=warmup, help="linear warm-up steps")
    p.add_argument("--wd", type=float, default=wd, help="AdamW weight decay")
    p.add_argument("--clip", type=float, default=3.0, help="gradient-norm clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR's checkpoint")
    p.add_argument(
        "--init",
        type=Path,
        help="start from this checkpoint's weights (a new "
        "optimiser and schedule: fine-tuning or a longer second run); for the "
        "tokenizer also a bundle folder",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--eval-every", type=int, default=0, help="steps (0: 8 times per run)")
    p.add_argument("--ckpt-every", type=int, default=0, help="steps between checkpoints")
    p.add_argument("--ckpt-minutes", type=float, default=10.0)
    p.add_argument("--log-seconds", type=float, default=10.0, help="progress line interval")
    p.add_argument(
        "--stop-after",
        type=int,
        default=0,
        help="stop (and checkpoint) after this step, keeping the schedule",
    )


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (`python main.py train ...` forwards here)."""
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(message)s",
            datefmt="%H:%M:%S",
        )
    # the progress lines are INFO records; `main.py train` has set up a quieter root logger
    logging.getLogger("engine.modeling").setLevel(logging.INFO)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
