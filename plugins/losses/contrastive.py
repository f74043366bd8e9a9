"""`contrastive`: InfoNCE / NT-Xent (SimCLR, Chen et al., 2020) over two augmented views of the
unlabeled target inputs (and, by default, the source inputs), so the encoder learns the target's
own structure without labels. The views come from the dataset plugin's ``augment``; the small
projection head is owned by the loss, trained, and never exported."""

import torch
import torch.nn.functional as F
from torch import nn

from tlbench import hookimpl
from tlbench.plugin.contracts import AdaptationLoss

from .recipe import RECIPE_SPACE, UDA_RECIPE, weight_space


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent: each row of ``z1`` must pick its partner in ``z2`` (and vice versa) among all
    other 2n-1 embeddings by cosine similarity / ``temperature``; the cross-entropy is averaged
    over all 2n anchors (SimCLR's convention)."""
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class Contrastive(AdaptationLoss):
    """InfoNCE between two random views, through a 2-layer projection head."""

    defaults = {"weight": 0.1, "temperature": 0.2, "projection_dim": 64, "include_source": True, **UDA_RECIPE}
    option_ranges = {"weight": (0.0, 1000000.0), "temperature": (0.0001, 100.0), "projection_dim": (1, 65536)}
    search_space = {**weight_space(0.01, 1.0), **RECIPE_SPACE}

    def setup(self, feature_dim, num_classes, ctx):
        dim = int(self.hparams["projection_dim"])
        self.projector = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, dim))

    def forward(self, batch):
        x = batch.target_inputs
        if self.hparams["include_source"] and batch.source_inputs is not None:
            x = torch.cat([batch.source_inputs, x])
        views = torch.cat([batch.augment(x), batch.augment(x)])
        z = self.projector(batch.model.backbone(views))
        z1, z2 = z.chunk(2)
        return info_nce(z1, z2, float(self.hparams["temperature"]))


@hookimpl
def register_adaptation_losses(register):
    register("contrastive", Contrastive)
