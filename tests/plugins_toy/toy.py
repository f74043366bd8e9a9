"""A tiny, fast image dataset for tests: two shifted domains of class-dependent blobs."""

import torch

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing, Split


def _domain(shift: float, seed: int, n: int = 120):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 8, 8, generator=g) * 0.5
    for c in range(3):
        x[y == c, :, 2 * c : 2 * c + 3, 2:6] += 2.0
    return x + shift, y


class Toy(Dataset):
    domains = ("a", "b")
    classes = ("zero", "one", "two")

    def __init__(self):
        self.preprocessing = Preprocessing(IMAGE, (1, 8, 8), (0.5,), (0.25,))

    def load(self, domain):
        x, y = _domain(0.0 if domain == "a" else 0.7, 1 if domain == "a" else 2)
        return DomainData(Split(x[:90], y[:90]), Split(x[90:], y[90:]))


@hookimpl
def register_datasets(register):
    register("toy", Toy, domains=Toy.domains, modality=IMAGE, num_classes=3)
