"""The proxy-ranking helper (one tie rule for the selection and estimator tables) and the salts
of a cell's random streams (their values are part of every stored result)."""

import pytest
import torch

from tlbench.utils.ranking import mean, pick_index, proxy_ranking
from tlbench.utils.seeds import Salt, seeded_generator


def test_salts_keep_the_values_results_were_produced_with():
    assert {s.name: int(s) for s in Salt} == {"SOURCE_TRAINING": 1, "TRANSFER": 2, "AUGMENT": 3, "SOURCE_HOLDOUT": 4,
                                              "VALIDATORS": 5, "BATCH_STATS": 6, "TRAIN_VIEW": 7}
    legacy = torch.Generator()
    legacy.manual_seed(3 * 1_000_003 + 2)
    assert torch.equal(torch.rand(5, generator=seeded_generator(3, Salt.TRANSFER)), torch.rand(5, generator=legacy))


def test_scores_equal_to_nine_digits_tie_and_the_first_option_wins():
    ranking = proxy_ranking([("a", 0.5, 1.0), ("b", 0.9, 1.0 + 1e-12), ("c", 0.7, 0.2)])
    assert ranking.pick == "a" and ranking.picked == 0.5 and ranking.regret == pytest.approx(0.4) and not ranking.all_tied
    assert pick_index([1.0, 1.0 + 1e-12]) == 0 and pick_index([1.0, 1.0 + 1e-6]) == 1 and pick_index([]) is None
    tied = proxy_ranking([("a", 0.5, 2.0), ("b", 0.9, 2.0)])
    assert tied.all_tied and tied.kendall_tau is None and tied.pick == "a"


def test_rank_correlation_regret_and_the_mean_skip_what_is_undefined():
    assert proxy_ranking([]) is None and proxy_ranking([("a", 0.5, 1.0)]).kendall_tau is None
    perfect = proxy_ranking([(i, acc, 10 * acc) for i, acc in enumerate([0.1, 0.4, 0.3])], best=0.5, weighted=True)
    assert perfect.pick == 1 and perfect.regret == pytest.approx(0.1)
    assert perfect.kendall_tau == pytest.approx(1.0) and perfect.weighted_tau == pytest.approx(1.0)
    assert proxy_ranking([(0, 0.1, 3.0), (1, 0.4, 2.0), (2, 0.3, 1.0)]).kendall_tau == pytest.approx(-1 / 3)
    assert mean([1, None, float("nan"), float("inf"), 3]) == 2 and mean([None]) is None
