"""The hooks a tlbench plugin implements. Each receives a ``register`` callback."""

import pluggy

hookspec = pluggy.HookspecMarker("tlbench")
hookimpl = pluggy.HookimplMarker("tlbench")


@hookspec
def register_backbones(register):
    """Register feature extractors: ``register(name, factory, modality="image"|"sequence", **meta)``.

    ``factory(input_shape, **options)`` returns an ``nn.Module`` mapping a batch to a
    ``(batch, out_features)`` tensor and exposing ``out_features``. Optional meta:
    ``input_size`` (preferred H, W), ``in_channels`` (required channel count), ``defaults``
    (option defaults), ``description``.

    Optional depth convention (used by depth-aware strategies such as ``partial`` and
    ``discriminative-lr``; see :mod:`tlbench.training.stages`): the module may define ``stages()``
    returning its blocks from input to output as ``nn.Module`` objects, and ``default_freeze``
    (how many bottom stages ``partial`` freezes). Without them the parameters are split into
    stages in registration order.

    Optional pretrained-classifier convention (used by transferability estimators that read
    source predictions, such as LEEP, when the source is ``pretrained``): the module may define
    ``pretrained_logits(x)`` returning the logits of the classifier its weights were trained
    with, ``(batch, classes)``.
    """


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, factory, domains=[...], modality=..., num_classes=...)``.

    ``factory(**options)`` returns a :class:`tlbench.plugin.contracts.Dataset`; all of its domains
    share one label space.
    """


@hookspec
def register_strategies(register):
    """Register transfer strategies: ``register(name, cls)`` with ``cls`` a
    :class:`tlbench.plugin.contracts.Strategy` subclass (what trains, at which learning rate, how).
    Optional meta ``check_options(options)`` raises ``UserError`` for bad hyperparameter values
    before any training (types are already checked against the class's ``defaults``)."""


@hookspec
def register_adaptation_losses(register):
    """Register adaptation losses: ``register(name, cls)`` with ``cls`` a
    :class:`tlbench.plugin.contracts.AdaptationLoss` subclass (source vs target features)."""


@hookspec
def register_executors(register):
    """Register grid executors: ``register(name, cls)`` with ``cls`` a
    :class:`tlbench.execution.Executor` subclass that runs tasks (source pretraining, grid cells)
    somewhere: in this process, in worker processes, on a cluster. ``cls.options`` names the
    settings it accepts (``workers``, ``devices``, ``ray_address``, ``threads``)."""


@hookspec
def register_validators(register):
    """Register model-selection validators: ``register(name, cls)`` with ``cls`` a
    :class:`tlbench.plugin.validator.Validator` subclass that scores a trained model from what is
    legitimately available (held-out labeled source data, unlabeled target training data) and
    says whether higher is better. Used to pick checkpoints and search trials."""


@hookspec
def register_estimators(register):
    """Register transferability estimators: ``register(name, cls)`` with ``cls`` a
    :class:`tlbench.plugin.estimator.Estimator` subclass that scores a model's target features
    (and, where needed, its source predictions) against target training labels before any
    fine-tuning; higher means the model should transfer better."""
