"""The plateau test that decides whether a cell's training finished."""

import math

from tlbench.training.convergence import has_flattened, supervised_trace


def test_still_falling_loss_is_not_flat():
    assert has_flattened([2.0 - 0.1 * i for i in range(20)]) is False


def test_exponential_decay_to_a_plateau_is_flat():
    assert has_flattened([1.0 + 2.0 * math.exp(-i / 2) for i in range(20)]) is True


def test_tiny_loss_is_flat_and_short_trace_is_unknown():
    assert has_flattened([0.04 - 0.001 * i for i in range(20)]) is True
    assert has_flattened([1.0, 0.5, 0.3]) is None


def test_supervised_terms_ignore_the_adversarial_term():
    steps = range(10, 210, 10)
    term_trace = {
        "source_ce": [[s, 1.0 + 2.0 * math.exp(-s / 20)] for s in steps],
        "adaptation": [[s, 2.0 - 0.008 * s] for s in steps],  # keeps moving: the game, not the classifier
    }
    total = [[s, a[1] + b[1]] for s, a, b in zip(steps, term_trace["source_ce"], term_trace["adaptation"])]
    assert has_flattened(supervised_trace(term_trace, total)) is True
    assert has_flattened([v for _, v in total]) is False
    assert supervised_trace(None, total) == [v for _, v in total]
