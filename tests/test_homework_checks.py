"""Tests for the in-notebook checker and the public checks of the MiraBest homework."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r2ska.homework import ASSIGNMENTS, Check, Checker, run_checks
from r2ska.homework.mirabest import FRFULL_TEST_SIZE


def _good_autoencoder_answers() -> dict:
    recon = np.zeros((8, 64, 64))
    recon[:, 30:34, 30:34] = 0.5
    return {
        "q1_class_counts": [517, 552],
        "q1_blank_mse": 0.00095,
        "q2_test_mse": 0.0003,
        "q2_reconstructions": recon,
        "q3_codes_2d": np.random.default_rng(0).normal(size=(FRFULL_TEST_SIZE, 2)),
        "q3_knn_accuracy": 0.64,
        "q4_choice": "b",
    }


def test_checker_reads_caller_globals():
    global q4_choice
    q4_choice = "c"
    try:
        report = Checker("mirabest_autoencoder").check("q4")
    finally:
        del q4_choice
    assert report.passed


def test_checker_passes_good_answers():
    checker = Checker("mirabest_autoencoder")
    answers = _good_autoencoder_answers()
    for question in ("q1", "q2", "q3", "q4"):
        assert checker.check(question, answers).passed, checker.check(question, answers)


def test_unanswered_question_fails_with_hint():
    report = Checker("mirabest_autoencoder").check("q1", {"q1_class_counts": ..., "q1_blank_mse": 0.001})
    assert not report.passed
    assert "q1_class_counts is still `...`" in repr(report)


def test_missing_variable_named():
    report = Checker("mirabest_autoencoder").check("q3", {})
    assert "q3_codes_2d is not defined" in repr(report)


def test_blank_reconstructions_fail():
    answers = _good_autoencoder_answers()
    answers["q2_reconstructions"] = np.zeros((8, 64, 64))
    report = Checker("mirabest_autoencoder").check("q2", answers)
    assert not report.outcomes[0].passed
    assert "collapsed" in report.outcomes[0].message


def test_mse_above_blank_fails():
    answers = _good_autoencoder_answers()
    answers["q2_test_mse"] = 0.002
    report = Checker("mirabest_autoencoder").check("q2", answers)
    assert "not below the blank-image MSE" in report.outcomes[1].message


def test_counts_must_cover_training_split():
    answers = _good_autoencoder_answers()
    answers["q1_class_counts"] = [517, 500]
    report = Checker("mirabest_autoencoder").check("q1", answers)
    assert "1017" in report.outcomes[0].message


def test_tensor_answers_accepted():
    answers = _good_autoencoder_answers()
    answers["q2_reconstructions"] = torch.from_numpy(answers["q2_reconstructions"])
    assert Checker("mirabest_autoencoder").check("q2", answers).passed


@pytest.mark.parametrize("value", [True, "0.5", float("nan"), 1.5])
def test_accuracy_must_be_fraction(value):
    answers = _good_autoencoder_answers()
    answers["q3_knn_accuracy"] = value
    assert not Checker("mirabest_autoencoder").check("q3", answers).passed


def test_retrieval_checks():
    answers = {
        "q1_neighbours": np.array([3, 10, 7, 900, 1]),
        "q1_neighbour_labels": np.array([0, 1, 1, 0, 0]),
        "q2_knn_accuracies": [0.6, 0.65, 0.62],
        "q2_probe_accuracies": [0.55, 0.6, 0.57],
        "q2_summary": {"knn": (0.62, 0.02), "probe": (0.57, 0.02)},
        "q3_rotated_accuracy": 0.6,
        "q3_augmented_accuracy": 0.63,
        "q4_choice": " B ",
    }
    checker = Checker("mirabest_retrieval")
    for question in ("q1", "q2", "q3", "q4"):
        assert checker.check(question, answers).passed
    answers["q1_neighbours"] = np.array([3, 3, 7, 900, 1])
    assert "5 different" in repr(checker.check("q1", answers))


def test_broken_check_reported_not_raised():
    def broken(answers):
        raise ZeroDivisionError("boom")

    [outcome] = run_checks([Check("broken", broken)], {})
    assert not outcome.passed
    assert "ZeroDivisionError: boom" in outcome.message


def test_unknown_assignment_and_question():
    with pytest.raises(KeyError, match="Unknown assignment 'nope'"):
        Checker("nope")
    with pytest.raises(KeyError, match="q1, q2, q3, q4"):
        Checker("mirabest_autoencoder").check("q9", {})


def test_report_html_escapes_messages():
    report = Checker("mirabest_autoencoder").check("q4", {"q4_choice": "<script>"})
    assert "<script>" not in report._repr_html_()
    assert "&lt;script&gt;" in report._repr_html_()


def test_points_total_ten_per_assignment():
    for assignment in ASSIGNMENTS.values():
        assert sum(q.points for q in assignment.questions) == 10
