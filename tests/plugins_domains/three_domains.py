"""A tiny three-domain dataset for multi-source and domain-generalisation tests.

Option ``poison``: the target-side training inputs of domain ``c`` are NaN (its test split stays
clean), so any cell that reads them (an adaptation loss, a target validator, int8 calibration)
fails or changes, and a domain-generalisation cell that truly withholds them does not.
"""

import torch

from tlbench import hookimpl
from tlbench.plugin.contracts import IMAGE, Dataset, DomainData, Preprocessing, Split

SHIFTS = {"a": 0.0, "b": 0.5, "c": 1.0}


class ThreeDomains(Dataset):
    domains = tuple(SHIFTS)
    classes = ("zero", "one", "two")

    def __init__(self, poison: bool = False):
        self.poison = poison
        self.preprocessing = Preprocessing(IMAGE, (1, 8, 8), (0.5,), (0.25,))

    def load(self, domain):
        g = torch.Generator().manual_seed(1 + list(SHIFTS).index(domain))
        n = 90 + 15 * list(SHIFTS).index(domain)  # domains of different sizes
        y = torch.arange(n) % 3
        x = torch.randn(n, 1, 8, 8, generator=g) * 0.5
        for c in range(3):
            x[y == c, :, 2 * c: 2 * c + 3, 2:6] += 2.0
        x = x + SHIFTS[domain]
        train, test = Split(x[:-30].clone(), y[:-30]), Split(x[-30:], y[-30:])
        if self.poison and domain == "c":
            train.x.fill_(float("nan"))
        return DomainData(train, test)


@hookimpl
def register_datasets(register):
    register("three", ThreeDomains, domains=ThreeDomains.domains, modality=IMAGE, num_classes=3,
             classes=ThreeDomains.classes, defaults={"poison": False})
