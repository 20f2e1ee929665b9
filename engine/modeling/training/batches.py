"""The images a step trains on and the fixed views it is evaluated on (engine/modeling/data.py
draws the crops).

A step's images, crops and flips are drawn for the global batch from (seed, step) alone and
every rank takes its own rows, so N processes train on exactly the images one process would.
"""

from __future__ import annotations

import argparse

import torch

from engine.modeling import data as data_mod
from engine.modeling.training.distributed import Dist


def train_batch(
    data: data_mod.Dataset, args: argparse.Namespace, step: int, dist: Dist, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's slice of the global batch of `step`: (images (b,3,S,S) in [0,1], labels)."""
    params = data_mod.random_params(args.seed, step, args.batch, len(data.train))
    lo, hi = dist.slice(args.batch)
    mine = params.slice(lo, hi)
    return data_mod.crops(data.train, mine, size), data.train.labels[
        mine.index.to(data.train.labels.device)
    ]


def eval_images(images: data_mod.ImageSet, size: int, device: torch.device) -> torch.Tensor:
    """Fixed held-out views: the centre crop plus 3 seeded random crops of every image."""
    images = images.to(device)
    n = len(images)
    views = [data_mod.crops(images, data_mod.center_params(n), size)]
    for k in range(3):
        params = data_mod.random_params(10_000 + k, 0, n, n)
        params.index = torch.arange(n)  # keep image order so labels line up with views
        views.append(data_mod.crops(images, params, size))
    return torch.cat(views)
