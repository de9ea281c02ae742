"""The MiraBest homework: questions, answer variables and public checks of both exercises."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from r2ska.homework.checks import Assignment, Check, Question

# Sizes of the MiraBest_F splits the exercises use: FRFull drops the 34 hybrids
# (30 train, 4 test); FRConfident keeps the confident FRI and FRII classes.
FRFULL_TRAIN_SIZE = 1069
FRFULL_TEST_SIZE = 153
CONFIDENT_TEST_SIZE = 104
CHOICES = ("a", "b", "c", "d")


def answer(answers: Mapping[str, Any], name: str) -> Any:
    """Return one answer, failing the check with a hint when it is missing or left as ``...``."""
    assert name in answers, f"{name} is not defined: run the cell that assigns it."
    value = answers[name]
    assert value is not Ellipsis, f"{name} is still `...`: replace it with your answer."
    return value


def number(answers: Mapping[str, Any], name: str) -> float:
    """Return an answer that must be a finite real number."""
    value = answer(answers, name)
    assert not isinstance(value, (bool, str, bytes)), f"{name} must be a number, got {type(value).__name__}."
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} must be a number, got {type(value).__name__}.") from None
    assert math.isfinite(result), f"{name} must be finite, got {result}."
    return result


def array(answers: Mapping[str, Any], name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """Return an answer as a finite float array of the given shape (None matches any size)."""
    value = answer(answers, name)
    try:
        result = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} must be an array of numbers, got {type(value).__name__}.") from None
    matches = result.ndim == len(shape) and all(
        expected is None or size == expected for size, expected in zip(result.shape, shape)
    )
    expected_shape = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
    assert matches, f"{name} must have shape {expected_shape}, got {result.shape}."
    assert np.isfinite(result).all(), f"{name} contains NaN or infinite values."
    return result


def fraction(answers: Mapping[str, Any], name: str) -> float:
    """Return an answer that must be a number in [0, 1], such as an accuracy."""
    value = number(answers, name)
    assert 0.0 <= value <= 1.0, f"{name} must lie between 0 and 1, got {value}."
    return value


def choice(answers: Mapping[str, Any], name: str) -> str:
    """Return a multiple-choice answer, one of the letters a-d."""
    value = answer(answers, name)
    # Quote only the start of a wrong value, because feedback must not carry long text.
    assert isinstance(value, str) and value.strip().lower() in CHOICES, (
        f"{name} must be one of {CHOICES}, got {repr(value)[:20]}."
    )
    return value.strip().lower()


def accuracy_list(answers: Mapping[str, Any], name: str) -> list[float]:
    """Return a list of at least three accuracies in [0, 1], one per seed."""
    values = array(answers, name, (None,))
    assert len(values) >= 3, f"{name} needs one accuracy per seed, at least 3, got {len(values)}."
    assert ((values >= 0) & (values <= 1)).all(), f"{name} values must lie between 0 and 1."
    return values.tolist()


# Exercise 1 ------------------------------------------------------------------------


def _check_counts(answers: Mapping[str, Any]) -> None:
    counts = array(answers, "q1_class_counts", (2,))
    assert (counts == np.round(counts)).all(), (
        "q1_class_counts must contain two whole numbers: the FRI and FRII counts."
    )
    assert (counts > 0).all(), "q1_class_counts must contain two positive counts."
    assert counts.sum() == FRFULL_TRAIN_SIZE, (
        f"The counts add up to {counts.sum():.0f}, but the FRFull training split has "
        f"{FRFULL_TRAIN_SIZE} images: count every image once."
    )


def _check_blank(answers: Mapping[str, Any]) -> None:
    value = number(answers, "q1_blank_mse")
    assert 0 < value < 0.01, (
        f"q1_blank_mse = {value} is not the MSE of blank images in [0, 1]: use "
        "r2ska.radio.blank_image_mse on the prepared test images."
    )


def _check_reconstructions(answers: Mapping[str, Any]) -> None:
    recon = array(answers, "q2_reconstructions", (8, 64, 64))
    assert recon.max() > 0.05, "The reconstructions are blank: the model has collapsed (see the hint)."


def _check_beats_blank(answers: Mapping[str, Any]) -> None:
    mse = number(answers, "q2_test_mse")
    blank = number(answers, "q1_blank_mse")
    assert mse > 0, (
        f"q2_test_mse = {mse} must be positive: it is the mean squared error of the "
        "reconstructions of the test images."
    )
    assert mse < blank, (
        f"q2_test_mse = {mse:.6f} is not below the blank-image MSE {blank:.6f}, so a blank "
        "output would do as well (or the value is a sum, not a mean per pixel)."
    )


def _check_map(answers: Mapping[str, Any]) -> None:
    array(answers, "q3_codes_2d", (FRFULL_TEST_SIZE, 2))


def _check_knn(answers: Mapping[str, Any]) -> None:
    fraction(answers, "q3_knn_accuracy")


def _check_q4(answers: Mapping[str, Any]) -> None:
    choice(answers, "q4_choice")


AUTOENCODER = Assignment(
    name="mirabest_autoencoder",
    title="Exercise 1: an autoencoder for radio galaxies",
    questions=(
        Question("q1", 2, ("q1_class_counts", "q1_blank_mse"), (
            Check("q1_class_counts has the FRI and FRII counts of the training split", _check_counts),
            Check("q1_blank_mse is the MSE of blank images", _check_blank),
        )),
        Question("q2", 3, ("q2_test_mse", "q2_reconstructions"), (
            Check("q2_reconstructions are 8 images of 64x64 pixels that are not blank", _check_reconstructions),
            Check("q2_test_mse is below the blank-image MSE", _check_beats_blank),
        )),
        Question("q3", 3, ("q3_codes_2d", "q3_knn_accuracy"), (
            Check(f"q3_codes_2d has one 2-D point per FRFull test image ({FRFULL_TEST_SIZE})", _check_map),
            Check("q3_knn_accuracy is an accuracy between 0 and 1", _check_knn),
        )),
        Question("q4", 2, ("q4_choice",), (
            Check("q4_choice is one of a, b, c, d", _check_q4),
        )),
    ),
)


# Exercise 2 ------------------------------------------------------------------------


def _check_neighbours(answers: Mapping[str, Any]) -> None:
    indices = array(answers, "q1_neighbours", (5,))
    assert (indices == np.round(indices)).all(), "q1_neighbours must contain integer row indices."
    assert len(set(indices.tolist())) == 5, "q1_neighbours must contain 5 different training images."
    assert ((indices >= 0) & (indices < FRFULL_TRAIN_SIZE)).all(), (
        f"q1_neighbours must index the {FRFULL_TRAIN_SIZE} FRFull training images."
    )


def _check_neighbour_labels(answers: Mapping[str, Any]) -> None:
    labels = array(answers, "q1_neighbour_labels", (5,))
    assert set(labels.tolist()) <= {0.0, 1.0}, "q1_neighbour_labels must be 0 (FRI) or 1 (FRII)."


def _check_seed_lists(answers: Mapping[str, Any]) -> None:
    knn = accuracy_list(answers, "q2_knn_accuracies")
    probe = accuracy_list(answers, "q2_probe_accuracies")
    assert len(knn) == len(probe), "Use the same seeds for the k-NN classifier and the linear probe."


def _check_summary(answers: Mapping[str, Any]) -> None:
    summary = answer(answers, "q2_summary")
    assert isinstance(summary, Mapping) and set(summary) == {"knn", "probe"}, (
        "q2_summary must be a dict with the keys 'knn' and 'probe'."
    )
    for key in ("knn", "probe"):
        pair = np.asarray(summary[key], dtype=float)
        assert pair.shape == (2,), f"q2_summary[{key!r}] must be (mean, std)."


def _check_rotation(answers: Mapping[str, Any]) -> None:
    fraction(answers, "q3_rotated_accuracy")
    fraction(answers, "q3_augmented_accuracy")


RETRIEVAL = Assignment(
    name="mirabest_retrieval",
    title="Exercise 2: similarity search and k-NN classification of radio galaxies",
    questions=(
        Question("q1", 2, ("q1_neighbours", "q1_neighbour_labels"), (
            Check("q1_neighbours are 5 different training-image indices", _check_neighbours),
            Check("q1_neighbour_labels are FR labels (0 or 1)", _check_neighbour_labels),
        )),
        Question("q2", 4, ("q2_knn_accuracies", "q2_probe_accuracies", "q2_summary"), (
            Check("one k-NN and one probe accuracy per seed, at least 3 seeds", _check_seed_lists),
            Check("q2_summary has (mean, std) for 'knn' and 'probe'", _check_summary),
        )),
        Question("q3", 2, ("q3_rotated_accuracy", "q3_augmented_accuracy"), (
            Check("both rotation accuracies lie between 0 and 1", _check_rotation),
        )),
        Question("q4", 2, ("q4_choice",), (
            Check("q4_choice is one of a, b, c, d", _check_q4),
        )),
    ),
)

ASSIGNMENTS: dict[str, Assignment] = {a.name: a for a in (AUTOENCODER, RETRIEVAL)}
"""The homework assignments by name."""
