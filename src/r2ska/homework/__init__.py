"""Homework: exercise questions, student-side checks and the exercise/solution generator."""

from r2ska.homework.checks import (
    Assignment,
    Check,
    CheckOutcome,
    CheckReport,
    Checker,
    Question,
    run_checks,
)
from r2ska.homework.mirabest import ASSIGNMENTS

__all__ = [
    "ASSIGNMENTS",
    "Assignment",
    "Check",
    "CheckOutcome",
    "CheckReport",
    "Checker",
    "Question",
    "run_checks",
]
