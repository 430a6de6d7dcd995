"""Distillation: soft targets from a real teacher model, cached per phase, through `ferkeras train`."""

import json
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import make_faces, make_folder_dataset

from ferkeras.artifacts import LIVE_PREFERENCE, resolve_model_file
from ferkeras.cli import main
from ferkeras.config import PhaseConfig
from ferkeras.data.pipeline import make_dataset
from ferkeras.data.sources import Split
from ferkeras.errors import FerKerasError
from ferkeras.inference.predictor import Predictor
from ferkeras.training.distillation import TEACHER_FILE, distillation_targets


def _faces(count_per_class: int = 2, size: int = 32) -> Split:
    images, labels = make_faces(count_per_class, size, seed=5)
    return Split("train", images, labels.astype(np.int32), [f"face {i}" for i in range(len(labels))])


def test_targets_blend_labels_with_the_teachers_flip_average(tiny_model, tmp_path):
    split = _faces()
    settings = PhaseConfig(distill_from=str(tiny_model), distill_weight=0.25)
    targets = distillation_targets(settings, split, tmp_path, "phase2")
    teacher = Predictor.load(tiny_model).predict(split.images, flip=True)
    onehot = np.eye(7)[split.labels]
    np.testing.assert_allclose(targets, 0.75 * onehot + 0.25 * teacher, atol=1e-5)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / TEACHER_FILE), teacher, atol=1e-6)
    # a resumed phase reads the cache instead of rerunning the teacher
    np.save(tmp_path / TEACHER_FILE, np.full_like(teacher, 1 / 7))
    again = distillation_targets(settings, split, tmp_path, "phase2")
    np.testing.assert_allclose(again, 0.75 * onehot + 0.25 / 7, atol=1e-6)
    assert distillation_targets(PhaseConfig(), split, tmp_path, "phase2") is None


def test_soft_targets_reach_the_training_batches():
    split = _faces(size=16)
    targets = np.random.default_rng(0).dirichlet(np.ones(7), len(split)).astype(np.float32)
    ds = make_dataset(split, batch_size=len(split), training=True, seed=1, targets=targets)
    _, batch_targets, _ = next(iter(ds))
    # shuffled, so compare as sets of rows
    order = np.lexsort(batch_targets.numpy().T)
    np.testing.assert_allclose(batch_targets.numpy()[order], targets[np.lexsort(targets.T)], atol=1e-6)


def test_a_missing_teacher_is_a_one_line_error_naming_the_option(tmp_path):
    settings = PhaseConfig(distill_from=str(tmp_path / "nowhere"))
    with pytest.raises(FerKerasError, match=r"phase2\.distill_from: model not found: .*nowhere"):
        distillation_targets(settings, _faces(), tmp_path, "phase2")


def test_train_distils_from_a_teacher_model(tiny_model, tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=6, size=32)
    run = tmp_path / "run"
    common = ["train", "--preset", "smoke", "--data", str(data), "--output", str(run)]
    runner = CliRunner()
    result = runner.invoke(
        main, common + ["--phase", "1", "--set", f"phase1.distill_from={tiny_model}", "--set", "phase1.distill_weight=0.7"]
    )
    assert result.exit_code == 0, result.output
    assert "teacher" in result.output and "flip-averaged" in result.output
    probs = np.load(run / "phase1" / TEACHER_FILE)
    assert probs.shape == (42, 7) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    card = json.loads((run / "model_card.json").read_text())
    # cards hold no absolute paths: a folder outside the home and working folders is named by its last part
    assert card["training"]["config"]["phase1"]["distill_from"] == tiny_model.name
    bad = runner.invoke(main, common + ["--phase", "1", "--output", str(tmp_path / "other"), "--set", "phase1.distill_weight=2"])
    assert bad.exit_code != 0 and "phase1.distill_weight must be between 0 and 1" in bad.output


def test_train_distils_from_stored_ensemble_members(tiny_model, tmp_path):
    """Members are committed files: a student trains on their mean without any teacher model present."""
    data = make_folder_dataset(tmp_path / "data", per_class=6, size=32)
    runner = CliRunner()
    member = tmp_path / "member_a"
    stored = runner.invoke(
        main, ["members", str(tiny_model), "--output", str(member), "--data", str(data), "--split", "train", "--view", "flip"]
    )
    assert stored.exit_code == 0, stored.output
    shutil.copytree(member, tmp_path / "member_b")
    teacher = f"{member},{tmp_path / 'member_b'}"
    common = ["train", "--preset", "smoke", "--data", str(data), "--phase", "1"]
    result = runner.invoke(main, [*common, "--output", str(tmp_path / "run"), "--set", f"phase1.distill_from={teacher}"])
    assert result.exit_code == 0, result.output
    assert "teacher: the mean of 2 member(s), view flip" in result.output
    link = json.loads((tmp_path / "run" / "model_card.json").read_text())["training"]["teachers"][0]
    assert link["view"] == "flip" and len(link["members"]) == 2
    # members stored on other faces are refused by checksum; a view they lack, and a folder that is no member, too
    other = make_folder_dataset(tmp_path / "other", per_class=6, size=32, seed=99)
    for args, message in (
        (["--data", str(other), "--set", f"phase1.distill_from={teacher}"], "checksum"),
        (
            ["--set", f"phase1.distill_from={teacher}", "--set", "phase1.distill_view=tencrop"],
            "no train probabilities with view 'tencrop'",
        ),
        (["--set", f"phase1.distill_from={member},{tmp_path / 'nothing'}"], "is not an ensemble member folder"),
    ):
        refused = runner.invoke(main, [*common, "--output", str(tmp_path / "refused"), *args])
        assert refused.exit_code == 1 and "phase1.distill_from" in refused.output and message in refused.output, refused.output
        assert not (tmp_path / "refused").exists()  # refused before anything was written


def test_an_online_teacher_scores_each_augmented_batch_as_the_student_sees_it(tiny_model):
    from ferkeras.training.distillation import OnlineTeacher

    split = _faces(count_per_class=4, size=40)
    teacher = OnlineTeacher([str(tiny_model)])
    assert teacher(np.zeros((0, 32, 32, 1), np.float32)).shape == (0, 7)
    augmented = make_dataset(split, batch_size=len(split), crop=30, training=True, seed=3)
    taught = make_dataset(split, batch_size=len(split), crop=30, training=True, seed=3, teacher=teacher, teacher_weight=0.4)
    images, onehot, weights = next(iter(augmented))
    same_images, targets, same_weights = next(iter(taught))
    np.testing.assert_array_equal(images.numpy(), same_images.numpy())
    np.testing.assert_array_equal(weights.numpy(), same_weights.numpy())
    # the tiny model takes 32 px inputs: the 30 px crops are resized for it, not cropped again; its int8
    # file is the teacher where other tests have exported one
    predictor = Predictor.load(resolve_model_file(tiny_model, LIVE_PREFERENCE))
    resized = np.stack([cv2.resize(x, (32, 32), interpolation=cv2.INTER_LINEAR) for x in images.numpy()])[..., None]
    soft = predictor.predict_prepared(resized)
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(targets.numpy(), 0.6 * onehot.numpy() + 0.4 * soft, atol=1e-4)
    assert not np.allclose(soft, predictor.predict_prepared(predictor.prepare(split.images)))  # not the unaugmented faces
    # with mixup the teacher scores the blended faces, and its probabilities join the blended labels
    mixed, mixed_labels, _ = next(iter(make_dataset(split, batch_size=len(split), crop=30, training=True, seed=3, mixup=0.4)))
    _, mixed_targets, _ = next(
        iter(
            make_dataset(
                split, batch_size=len(split), crop=30, training=True, seed=3, mixup=0.4, teacher=teacher, teacher_weight=0.4
            )
        )
    )
    assert not np.allclose(mixed.numpy(), images.numpy())
    np.testing.assert_allclose(mixed_targets.numpy(), 0.6 * mixed_labels.numpy() + 0.4 * teacher(mixed.numpy()), atol=1e-4)


def test_online_distillation_trains_and_names_its_teachers_in_the_card(tiny_model, tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=6, size=32)
    run = tmp_path / "run"
    common = ["train", "--preset", "smoke", "--data", str(data), "--phase", "1", "--set", "phase1.distill_view=online"]
    runner = CliRunner()
    result = runner.invoke(main, [*common, "--output", str(run), "--set", f"phase1.distill_from={tiny_model},{tiny_model}"])
    assert result.exit_code == 0, result.output
    assert "teacher: 2 model(s) scoring each augmented batch" in result.output
    assert not (run / "phase1" / TEACHER_FILE).exists()  # nothing is stored per face
    link = json.loads((run / "model_card.json").read_text())["training"]["teachers"][0]
    assert link == {"phase": "phase1", "models": [tiny_model.name, tiny_model.name], "view": "online"}
    member = tmp_path / "member"
    assert runner.invoke(main, ["members", str(tiny_model), "--output", str(member), "--data", str(data)]).exit_code == 0
    refused = runner.invoke(main, [*common, "--output", str(tmp_path / "refused"), "--set", f"phase1.distill_from={member}"])
    assert refused.exit_code == 1 and "phase1.distill_view online needs models" in refused.output, refused.output
    bad_view = runner.invoke(main, [*common[:-2], "--output", str(tmp_path / "x"), "--set", "phase1.distill_view=live"])
    assert bad_view.exit_code != 0 and "online" in bad_view.output
