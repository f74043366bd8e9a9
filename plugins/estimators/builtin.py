"""Registers the first-party transferability estimators (``tlbench plugins`` lists them)."""

from tlbench import hookimpl
from tlbench_plugins.estimators.hscore import HScore, ShrunkHScore
from tlbench_plugins.estimators.knn import KNN
from tlbench_plugins.estimators.leep import LEEP, NCE
from tlbench_plugins.estimators.logme import LogME


@hookimpl
def register_estimators(register):
    register("logme", LogME)
    register("leep", LEEP)
    register("nce", NCE)
    register("hscore", HScore)
    register("hscore-lw", ShrunkHScore)
    register("knn", KNN)
