"""`snd`: soft neighbourhood density (Saito et al., ICCV 2021)."""

import torch

from tlbench import hookimpl
from tlbench.plugin.validator import TARGET, Validator, entropy


def soft_neighborhood_density(vectors: torch.Tensor, temperature: float = 0.05) -> float:
    """Mean entropy of each row's softmax similarity to every other row (cosine similarity of
    the L2-normalised ``vectors`` divided by ``temperature``; a row is not its own neighbour,
    as in pytorch-adapt's SNDValidator). Entropy in nats, averaged over the rows. High when points
    sit in dense clusters (many near-equal neighbours), low when scattered."""
    z = torch.nn.functional.normalize(vectors.float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    return float(entropy(sim).mean())


class SoftNeighborhoodDensity(Validator):
    """Soft neighbourhood density of the target softmax predictions (higher is better): a model
    whose target predictions form tight, well-separated clusters scores high. At most
    ``max_points`` target examples (a seeded random subset) keep it O(max_points²)."""

    needs = (TARGET,)
    defaults = {"temperature": 0.05, "max_points": 1000}
    option_ranges = {"temperature": (0.0001, 100.0), "max_points": (2, 1000000)}

    def score(self, inputs):
        probs = torch.softmax(inputs.target_logits.float(), dim=1)
        if len(probs) > self.hparams["max_points"]:
            keep = torch.randperm(len(probs), generator=inputs.generator)[: self.hparams["max_points"]]
            probs = probs[keep.to(probs.device)]
        return soft_neighborhood_density(probs, self.hparams["temperature"])


@hookimpl
def register_validators(register):
    register("snd", SoftNeighborhoodDensity)
