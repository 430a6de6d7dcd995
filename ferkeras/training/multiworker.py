"""``--strategy multiworker``: data-parallel training over machines with TensorFlow's MultiWorkerMirroredStrategy.

Each machine runs the same ``ferkeras train`` command with its own ``TF_CONFIG``
(docs/training.md, "Several machines"). Gradients are averaged over all workers
every step. Worker 0 is the chief: it alone writes the run folder; the other
workers write their copies into a scratch folder. All workers must start from
the same epoch, so to resume, the run folder must be on storage every worker
reads (a shared mount); otherwise a worker that finds another epoch stops with a
message instead of training out of step.

Keras 3 does not yet run ``model.fit`` under this strategy (keras-team/keras
issue 20585, open): two of its helpers reduce values in ways the multi-worker
strategy refuses. :func:`patch_keras` replaces those two, narrowly; the test
``tests/test_multiworker.py`` checks that two workers on 127.0.0.1 train like
one process, so a Keras release that changes them is caught.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from ferkeras.errors import FerKerasError


def read_tf_config() -> dict:
    """``TF_CONFIG`` parsed and checked: a worker list and this process's index in it."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise FerKerasError(
            "--strategy multiworker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["10.0.0.5:12345", "10.0.0.6:12345"]}, "task": {"type": "worker", "index": 0}} '
            "(docs/training.md, 'Several machines')"
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FerKerasError(f"TF_CONFIG is not a valid cluster description ({exc!r}); see docs/training.md") from None
    if task.get("type") != "worker" or not 0 <= index < len(workers):
        raise FerKerasError(f"TF_CONFIG: task must be a worker with an index below {len(workers)}, got {task}")
    if set(config["cluster"]) - {"worker"}:
        raise FerKerasError("TF_CONFIG: only 'worker' tasks are supported (worker 0 acts as chief)")
    return config


def patch_keras() -> None:
    """Let ``model.fit`` run under MultiWorkerMirroredStrategy (see the module docstring)."""
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_ferkeras_multiworker", False):
        return

    def local(value):
        return value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value

    def symbolic_build(self, iterator=None, data_batch=None):
        # The original averages a real batch over workers just to learn its shapes;
        # the multi-worker strategy cannot reduce integer labels that way. One
        # worker's batch has the same shapes.
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        # The original averages scalar logs along axis 0, which scalars lack.
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None) if isinstance(v, tf.distribute.DistributedValues) else v,
                values,
            )
        return original_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._ferkeras_multiworker = True


def multiworker_strategy():
    """The strategy for this worker (call before any other TensorFlow work)."""
    read_tf_config()
    patch_keras()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def worker_folder(run_dir: Path, strategy, copy: bool = True) -> Path:
    """Where this worker writes: the run folder for the chief, a scratch copy of it (``copy``) for the others."""
    if is_chief(strategy):
        return run_dir
    scratch = Path(tempfile.mkdtemp(prefix=f"ferkeras-worker{strategy.cluster_resolver.task_id}-"))
    if copy and run_dir.is_dir():
        shutil.copytree(run_dir, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns("tensorboard", ".*.tmp.*"))
    return scratch


def shard_by_data(dataset: tf.data.Dataset, strategy) -> tf.data.Dataset:
    """Under the multi-worker strategy, split each batch between workers (the data comes from memory, not files)."""
    if getattr(strategy, "cluster_resolver", None) is None:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def check_same_start(strategy, epoch: int, phase: str) -> None:
    """Stop with a message when workers would start ``phase`` from different epochs (-1: already finished)."""
    if getattr(strategy, "cluster_resolver", None) is None:
        return
    mine = strategy.experimental_distribute_values_from_function(lambda _: tf.constant([float(epoch)]))
    epochs = sorted({int(e) for e in strategy.gather(mine, axis=0).numpy()})
    if len(epochs) > 1:
        raise FerKerasError(
            f"[{phase}] workers would start from different epochs ({', '.join(map(str, epochs))}; -1: finished): to "
            "resume a multi-worker run, its --output folder must be on storage every worker reads"
        )
