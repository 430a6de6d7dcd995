"""``--strategy multiworker``: two worker processes on 127.0.0.1 train a tiny model like one process does."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import invoke

# no dropout, augmentation or class weights: what is left to differ is how the batch is split
SETTINGS = [
    "--preset",
    "smoke",
    "--phase",
    "1",
    "--epochs1",
    "2",
    "--augment",
    "0",
    "--class-weighting",
    "none",
    "--set",
    "model.dropout=0",
]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def final_weights(run):
    import keras

    import ferkeras  # noqa: F401  (registers the layers)

    return [np.asarray(w) for w in keras.models.load_model(run / "model.keras").weights]


def test_two_workers_train_like_one_process(folder_data, tmp_path):
    single = tmp_path / "single"
    result = invoke("train", "--data", folder_data, "--output", single, *SETTINGS)
    assert result.exit_code == 0, result.output

    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    shared = tmp_path / "multi"
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        command = [
            sys.executable,
            "-m",
            "ferkeras.cli",
            "train",
            "--data",
            str(folder_data),
            "--output",
            str(shared),
            "--strategy",
            "multiworker",
            *SETTINGS,
        ]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for w in workers:
                w.kill()
            pytest.fail("the workers did not finish in 300 s")
    assert all(w.returncode == 0 for w in workers), "\n".join(o[-3000:] for o in outputs)

    assert "strategy: multiworker, 2 replicas; this is worker 0 (chief)" in outputs[0]
    assert "strategy: multiworker, 2 replicas; this is worker 1 (writing to " in outputs[1]
    # only the chief wrote the shared run folder
    assert (shared / "model.keras").is_file() and (shared / "model_card.json").is_file()
    history = json.loads((shared / "phase1" / "state.json").read_text())["history"]
    alone = json.loads((single / "phase1" / "state.json").read_text())["history"]
    assert len(history) == len(alone) == 2
    for key in ("loss", "val_loss"):
        print(key, [row[key] for row in history], [row[key] for row in alone])
        assert np.allclose([row[key] for row in history], [row[key] for row in alone], rtol=0.05), key
    pairs = list(zip(final_weights(shared), final_weights(single)))
    print("largest weight difference", max(float(np.abs(a - b).max()) for a, b in pairs))
    for mine, theirs in pairs:
        assert np.allclose(mine, theirs, atol=0.05, rtol=0.05)


def test_multiworker_without_tf_config_is_one_clear_line(folder_data, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = invoke("train", "--data", folder_data, "--output", tmp_path / "run", "--strategy", "multiworker", *SETTINGS)
    assert result.exit_code == 1 and "--strategy multiworker needs TF_CONFIG" in result.output
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}')
    result = invoke("train", "--data", folder_data, "--output", tmp_path / "run", "--strategy", "multiworker", *SETTINGS)
    assert result.exit_code == 1 and "task must be a worker" in result.output
