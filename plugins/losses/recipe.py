"""The training recipe the classic UDA papers share (not a plugin itself).

DANN (Ganin & Lempitsky, 2015) trains with SGD, momentum 0.9, a base rate annealed as
lr0 (1 + 10 p) ** -0.75 over training progress p; DAN (MMD), Deep CORAL, CDAN and most of their
successors reuse that loop. The papers' lr0 = 0.01 is for a new head on a pretrained network;
tlbench's digit models fine-tune every layer at one rate, and lr0 = 0.001 is what was validated.
Every first-party adaptation loss and the `control` declare these
keys in their defaults, so a loss and its control train in the very same loop, and so a
loss's gain over the control is the adaptation term's alone. How the values were chosen (on the
validation pair digits:uci -> digits:mnist) is written up in results/adaptation/README.md.
"""

UDA_RECIPE = {
    "optimizer": "sgd",
    "lr": 0.001,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "schedule": "inverse",
    "schedule_gamma": 10.0,
    "schedule_power": 0.75,
}

# Where a search (tlbench run --search N) looks around that recipe: the learning rate over two
# decades centred on the validated 0.001, log-uniform. Each loss adds its own weight's range.
RECIPE_SPACE = {"lr": {"low": 1e-4, "high": 1e-2, "log": True}}


def weight_space(low: float, high: float) -> dict:
    """A log-uniform search range for a loss's ``weight``."""
    return {"weight": {"low": low, "high": high, "log": True}}
