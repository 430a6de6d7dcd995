"""What each phase trains and how: freeze rules, optimiser, schedule, compile."""

from __future__ import annotations

import keras

from ferkeras.config import PhaseConfig
from ferkeras.models.resnet import batchnorm_layers, is_head_or_attention


def apply_freeze_rules(model: keras.Model, phase: PhaseConfig) -> None:
    """Set ``trainable`` per layer for this phase.

    ``attention_and_head`` freezes every backbone layer; a frozen BatchNorm runs in
    inference mode in Keras 3, so its statistics stay put. ``freeze_batchnorm``
    additionally keeps every BatchNorm (also inside CBAM) in inference mode.
    """
    for layer in model.layers:
        layer.trainable = phase.trainable == "all" or is_head_or_attention(layer.name)
    if phase.freeze_batchnorm:
        for layer in batchnorm_layers(model):
            layer.trainable = False


def learning_rate(phase: PhaseConfig, steps_per_epoch: int):
    """A float (constant, plateau) or a cosine schedule with linear warm-up."""
    if phase.schedule != "cosine":
        return phase.learning_rate
    warmup = int(round(phase.warmup_epochs * steps_per_epoch))
    total = max(phase.epochs * steps_per_epoch - warmup, 1)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(phase.learning_rate, total)
    return keras.optimizers.schedules.CosineDecay(
        phase.learning_rate * 0.01, total, warmup_target=phase.learning_rate, warmup_steps=warmup
    )


def make_optimizer(phase: PhaseConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.9 (the published FER2013 recipes)."""
    lr = learning_rate(phase, steps_per_epoch)
    if phase.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=phase.weight_decay)
    return keras.optimizers.AdamW(lr, weight_decay=phase.weight_decay)


def compile_for_phase(model: keras.Model, phase: PhaseConfig, steps_per_epoch: int, label_smoothing: float) -> None:
    """Freeze per the phase, then compile (recompiling is what makes ``trainable`` count)."""
    apply_freeze_rules(model, phase)
    model.compile(
        optimizer=make_optimizer(phase, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.F1Score(average="macro", name="macro_f1")],
    )


def build_training_state(model: keras.Model) -> None:
    """Create the optimiser's and the metrics' variables now, before ``fit``.

    Without a distribution strategy Keras creates them inside the first traced
    training step, and TensorFlow traces a function that creates variables twice:
    building them first about halves the start-up of every phase and every resume
    (docs/benchmarks.md, "Training step").
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    scores = keras.ops.zeros((1, model.output_shape[-1]))
    model.compute_metrics(None, scores, scores, sample_weight=None)
    model.reset_metrics()
