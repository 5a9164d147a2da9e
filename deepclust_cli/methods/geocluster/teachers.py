"""GeoCluster's teachers: place ``k`` centers (points) so that each object is near its nearest
center *under the object metric*, then split the objects by nearest center.

- :func:`kmeans_centers` — the later GeoCluster version: k-means++ seeding on the objects'
  box centers (probability ∝ squared metric distance to the nearest chosen center), then Lloyd
  steps whose update is object-aware: each center moves to the mean of the *closest points* of
  its objects, the fixed point of ``Σ_o d(c, o)²`` for the Euclidean metric.
- :func:`energy_centers` — the original energy-based teacher, optimized (Adam) from the
  k-means++ seeds: ``softmin_τ`` of the metric distances (the fit) + bounding-box penalty
  (centers stay in the objects' box) + a KL term of the mean soft assignment to uniform (our
  reading of the original's latent KL: every child receives objects) + a Gaussian repulsion
  between centers.
"""

from __future__ import annotations

from typing import Optional

import torch

from deepclust_cli.engine.context import Context
from deepclust_cli.engine.optim import Optimizer
from deepclust_cli.methods.geocluster.config import EnergyConfig
from deepclust_cli.ops.geometry import ObjectFamily


def box_centers(objects: torch.Tensor, family: ObjectFamily) -> torch.Tensor:
    low, high = family.bounds(objects)
    return (low + high) / 2


def metric_to_centers(objects: torch.Tensor, centers: torch.Tensor, family: ObjectFamily) -> torch.Tensor:
    """``d(c_j, o_i)`` for every object × center (n × k)."""
    return family.distance(centers[None], objects[:, None])


def assign(objects: torch.Tensor, centers: torch.Tensor, family: ObjectFamily) -> torch.Tensor:
    """The index of each object's nearest center under the object metric."""
    return metric_to_centers(objects, centers, family).argmin(dim=1)


def kmeans_plus_plus(objects: torch.Tensor, family: ObjectFamily, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` seeds among the objects' box centers, each drawn ∝ the squared metric distance of the
    object to the nearest seed so far (uniformly once every object touches a seed)."""
    candidates = box_centers(objects, family)
    chosen = [int(torch.randint(len(objects), (1,), generator=generator))]
    nearest = family.distance(candidates[chosen[0]], objects)
    for _ in range(1, k):
        weights = nearest.square().double().cpu()
        if float(weights.sum()) <= 0:
            weights = torch.ones_like(weights)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(pick)
        nearest = torch.minimum(nearest, family.distance(candidates[pick], objects))
    return candidates[chosen]


def kmeans_centers(objects: torch.Tensor, family: ObjectFamily, k: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeds refined by at most ``steps`` object-aware Lloyd steps (until no object
    changes center); a center left without objects stays where it was."""
    centers = kmeans_plus_plus(objects, family, k, generator)
    labels = None
    for _ in range(steps):
        new_labels = assign(objects, centers, family)
        if labels is not None and torch.equal(new_labels, labels):
            break
        labels = new_labels
        closest = family.closest_point(centers[labels], objects)
        sums = torch.zeros_like(centers).index_add_(0, labels, closest)
        counts = torch.bincount(labels, minlength=k).to(centers.dtype)[:, None]
        centers = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
    return centers


def energy_centers(
    objects: torch.Tensor, family: ObjectFamily, k: int, settings: EnergyConfig, generator: torch.Generator, context: Optional[Context] = None
) -> torch.Tensor:
    """Centers minimizing ``E = mean_o softmin_τ d(c, o) + w_box·box + w_kl·KL(q̄‖U) + w_rep·rep``
    (see the module docstring), from the k-means++ seeds, by the trainer's optimizer (Adam under
    ``trainer.optimizer=auto``) through ``context``."""
    low, high = family.bounds(objects)
    box_low, box_high = low.amin(dim=0), high.amax(dim=0)
    scale = float((box_high - box_low).max().clamp_min(1e-12))
    centers = kmeans_plus_plus(objects, family, k, generator).clone().requires_grad_(True)
    optimizer = Optimizer([centers], context or Context(show_progress=False), lr=settings.lr * scale, name="geocluster_teacher")
    tau = settings.temperature
    off_diagonal = ~torch.eye(k, dtype=torch.bool, device=objects.device)
    with torch.enable_grad():
        for _ in range(settings.steps):
            distances = metric_to_centers(objects, centers, family) / scale
            fit = -tau * torch.logsumexp(-distances / tau, dim=1).mean()
            share = torch.softmax(-distances / tau, dim=1).mean(dim=0)
            balance = (share * (share.clamp_min(1e-12) * k).log()).sum()
            outside = (torch.relu(box_low - centers) + torch.relu(centers - box_high)) / scale
            box = outside.square().sum(dim=1).mean()
            gaps = torch.cdist(centers, centers) / scale
            repulsion = torch.exp(-(gaps * k).square())[off_diagonal].mean() if k > 1 else gaps.sum() * 0
            energy = fit + settings.box_weight * box + settings.balance_weight * balance + settings.repulsion_weight * repulsion
            optimizer.step(energy)
    return centers.detach()
