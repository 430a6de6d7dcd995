"""ferkeras.training.compare_histories on history.csv files written by the trainer's own writer."""

import pytest

from ferkeras.training import compare_histories
from ferkeras.training.callbacks import write_history_csv


def _history(folder, accuracies, f1s):
    rows = [
        {"phase": "phase2", "epoch": epoch, "seconds": 100.0 + epoch, "val_accuracy": acc, "val_macro_f1": f1}
        for epoch, (acc, f1) in enumerate(zip(accuracies, f1s), start=1)
    ]
    path = folder / "phase2" / "history.csv"
    path.parent.mkdir(parents=True)
    write_history_csv(path, rows)
    return path


def test_compares_shared_epochs_and_window_means(tmp_path, capsys):
    running = _history(tmp_path / "run_new", [0.60, 0.62, 0.64], [0.50, 0.52, 0.54])
    finished = _history(tmp_path / "run_old", [0.61, 0.63, 0.65, 0.70], [0.51, 0.53, 0.55, 0.60])

    compare_histories.main([str(running), str(finished), "--window", "2-3", "--window", "3-4"])
    lines = capsys.readouterr().out.splitlines()

    assert "run_new/phase2" in lines[0] and "run_old/phase2" in lines[0]
    epochs = [line.split()[0] for line in lines[1:] if line.split()[0].isdigit()]
    assert epochs == ["1", "2", "3"]  # epoch 4 exists in one history only
    assert lines[2].split() == ["2", "62.00", "/", "0.520", "63.00", "/", "0.530"]
    mean_2_3 = next(line for line in lines if line.startswith("mean 2-3:"))
    assert mean_2_3.split()[2:] == ["63.00", "/", "0.530", "64.00", "/", "0.540"]
    mean_3_4 = next(line for line in lines if line.startswith("mean 3-4:"))
    assert "missing epochs" in mean_3_4 and "67.50 / 0.575" in mean_3_4
    assert "run_old/phase2: 4 epochs, 101-104 s each" in lines[-1]

    compare_histories.main([str(running), str(finished)])  # default windows: all shared epochs, the last 10
    means = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("mean")]
    assert means == [["mean", "1-3:", "62.00", "/", "0.520", "63.00", "/", "0.530"]]


def test_rejects_a_file_that_is_not_a_history(tmp_path):
    other = tmp_path / "metrics.csv"
    other.write_text("class,precision\nhappy,0.9\n")
    with pytest.raises(SystemExit, match="metrics.csv is not a ferkeras history.csv"):
        compare_histories.main([str(other)])
    with pytest.raises(SystemExit, match="cannot read history .*absent.csv"):
        compare_histories.main([str(tmp_path / "absent.csv")])


def test_rejects_a_history_with_a_missing_value(tmp_path):
    path = _history(tmp_path / "run", [0.60, 0.62], [0.50, 0.52])
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("val_accuracy")] = ""
    path.write_text("\n".join([lines[0], lines[1], ",".join(cells)]) + "\n")
    with pytest.raises(SystemExit, match=r"history.csv, line 3: not a number"):
        compare_histories.main([str(path)])
