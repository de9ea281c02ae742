"""Hidden checks of the MiraBest homework, run only by the grader and never inside a submission's sandbox.

They compare the answers with reference values the grader computes from the real data,
so they need the MiraBest files (``R2SKA_DATA_MIRROR`` or the cache).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from r2ska.data import load_mirabest
from r2ska.homework.checks import Check
from r2ska.homework.mirabest import CONFIDENT_TEST_SIZE, accuracy_list, answer, array, choice, fraction, number
from r2ska.radio import blank_image_mse, prepare_radio_images

# Relative tolerance for answers that must equal a value the grader recomputes.
_RTOL = 1e-4
# A reconstruction must have at most this fraction of the blank-image MSE.
_MAX_MSE_RATIO = 0.6
# The codes of a small autoencoder separate FRI from FRII only partly: the solutions
# reach about 0.65, so an accuracy above this is implausible for these exercises.
_MAX_ACCURACY = 0.95
# A reconstruction this close to the input is a copy of it, not the output of a bottleneck.
_MIN_RECONSTRUCTION_MSE = 1e-7


@functools.lru_cache(maxsize=1)
def _reference() -> dict[str, Any]:
    train = load_mirabest("train", "FRFull")
    test = load_mirabest("test", "FRFull")
    confident = load_mirabest("test", "FRConfident")
    test_images = prepare_radio_images(test.images)
    return {
        # Accuracy of always predicting the most common class, the level to beat.
        "majority_frfull": torch.bincount(test.labels).max().item() / len(test),
        "majority_confident": torch.bincount(confident.labels).max().item() / len(confident),
        "counts": torch.bincount(train.labels).tolist(),
        "train_labels": train.labels.numpy(),
        "blank_mse": blank_image_mse(test_images),
        "first_test_images": test_images[:8, 0].numpy().astype(np.float64),
    }


def _counts_exact(answers: Mapping[str, Any]) -> None:
    counts = array(answers, "q1_class_counts", (2,))
    assert counts.tolist() == _reference()["counts"], "the class counts are not those of the FRFull training split"


def _blank_exact(answers: Mapping[str, Any]) -> None:
    value = number(answers, "q1_blank_mse")
    assert np.isclose(value, _reference()["blank_mse"], rtol=_RTOL), "q1_blank_mse is not that of the prepared test images"


def _reconstructions_good(answers: Mapping[str, Any]) -> None:
    recon = array(answers, "q2_reconstructions", (8, 64, 64))
    originals = _reference()["first_test_images"]
    mse = float(np.mean((recon - originals) ** 2))
    blank = float(np.mean(originals**2))
    assert mse < _MAX_MSE_RATIO * blank, "the reconstructions of the first 8 test images are not close to them"
    assert mse > _MIN_RECONSTRUCTION_MSE, "the reconstructions are copies of the test images"


def _test_mse_good(answers: Mapping[str, Any]) -> None:
    mse = number(answers, "q2_test_mse")
    assert mse < _MAX_MSE_RATIO * _reference()["blank_mse"], "the test MSE is too close to that of blank images"


def _map_spread(answers: Mapping[str, Any]) -> None:
    points = array(answers, "q3_codes_2d", (None, 2))
    assert points.std(axis=0).min() > 0, "the 2-D map puts every test image at the same point"


def _knn_plausible(answers: Mapping[str, Any]) -> None:
    accuracy = fraction(answers, "q3_knn_accuracy")
    assert accuracy > _reference()["majority_frfull"], "the k-NN accuracy is not above the majority class"
    assert accuracy <= _MAX_ACCURACY, "the k-NN accuracy is implausibly high for these codes"


def _choice_is(letter: str, name: str = "q4_choice"):
    def check(answers: Mapping[str, Any]) -> None:
        assert choice(answers, name) == letter, "the chosen statement is not the best one"

    return check


def _labels_match_indices(answers: Mapping[str, Any]) -> None:
    indices = array(answers, "q1_neighbours", (5,)).astype(int)
    labels = array(answers, "q1_neighbour_labels", (5,))
    expected = _reference()["train_labels"][indices]
    assert labels.tolist() == expected.tolist(), "q1_neighbour_labels are not the labels of q1_neighbours"


def _on_confident_test_set(*names: str):
    def check(answers: Mapping[str, Any]) -> None:
        for name in names:
            value = answer(answers, name)
            values = np.atleast_1d(np.asarray(value, dtype=float))
            counts = values * CONFIDENT_TEST_SIZE
            assert np.allclose(counts, np.round(counts), atol=1e-6), (
                f"{name} is not an accuracy on the {CONFIDENT_TEST_SIZE} FRConfident test images"
            )

    return check


def _summary_matches(answers: Mapping[str, Any]) -> None:
    summary = answer(answers, "q2_summary")
    for key, name in (("knn", "q2_knn_accuracies"), ("probe", "q2_probe_accuracies")):
        values = accuracy_list(answers, name)
        mean, std = (float(v) for v in summary[key])
        assert np.isclose(mean, np.mean(values)), f"q2_summary[{key!r}] has the wrong mean"
        assert np.isclose(std, np.std(values, ddof=1)), f"q2_summary[{key!r}] has the wrong sample std"


def _knn_mean_plausible(answers: Mapping[str, Any]) -> None:
    mean = float(np.mean(accuracy_list(answers, "q2_knn_accuracies")))
    assert mean > _reference()["majority_confident"], "the mean k-NN accuracy is not above the majority class"
    assert mean <= _MAX_ACCURACY, "the mean k-NN accuracy is implausibly high for these codes"


HIDDEN_CHECKS: dict[str, dict[str, tuple[Check, ...]]] = {
    "mirabest_autoencoder": {
        "q1": (
            Check("class counts equal the reference", _counts_exact),
            Check("blank-image MSE equals the reference", _blank_exact),
        ),
        "q2": (
            Check("reconstructions are close to the first 8 test images", _reconstructions_good),
            Check("test MSE is well below the blank-image MSE", _test_mse_good),
        ),
        "q3": (
            Check("the 2-D map is spread out", _map_spread),
            Check("k-NN accuracy is above the majority class and plausible", _knn_plausible),
        ),
        "q4": (Check("the best statement is chosen", _choice_is("b")),),
    },
    "mirabest_retrieval": {
        "q1": (Check("neighbour labels belong to the neighbour indices", _labels_match_indices),),
        "q2": (
            Check("accuracies are measured on the FRConfident test set",
                  _on_confident_test_set("q2_knn_accuracies", "q2_probe_accuracies")),
            Check("summary means and sample stds match the per-seed accuracies", _summary_matches),
            Check("mean k-NN accuracy is above the majority class and plausible", _knn_mean_plausible),
        ),
        "q3": (
            Check("rotation accuracies are measured on the FRConfident test set",
                  _on_confident_test_set("q3_rotated_accuracy", "q3_augmented_accuracy")),
        ),
        "q4": (Check("the best statement is chosen", _choice_is("b")),),
    },
}
"""Hidden checks by assignment and question."""


def prepare() -> None:
    """Compute the reference values once before grading, so missing data fails early."""
    _reference()
