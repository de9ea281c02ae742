"""Questions, their checks, and the in-notebook checker that students run."""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CheckFunction = Callable[[Mapping[str, Any]], None]
"""A check receives the answers by variable name and raises AssertionError with a hint."""


@dataclass(frozen=True)
class Check:
    """One test of a question's answers.

    Attributes:
        description: What the check tests, shown to the student or grader.
        function: Raises AssertionError, with a message that helps the student,
            when the answers fail the test.
    """

    description: str
    function: CheckFunction


@dataclass(frozen=True)
class Question:
    """One graded question of an assignment.

    Attributes:
        name: Short name used in notebooks and grades, for example ``"q1"``.
        points: Maximum points; they are shared equally among all checks of the
            question, the public ones and the hidden ones used in grading.
        answers: Names of the notebook variables that contain the answer.
        checks: Public checks, which students run in their notebook.
    """

    name: str
    points: float
    answers: tuple[str, ...]
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Assignment:
    """An exercise notebook's questions, in notebook order."""

    name: str
    title: str
    questions: tuple[Question, ...]

    def question(self, name: str) -> Question:
        """Look up a question by name.

        Raises:
            KeyError: If the assignment has no such question; the message lists the names.
        """
        for question in self.questions:
            if question.name == name:
                return question
        names = ", ".join(q.name for q in self.questions)
        raise KeyError(f"{self.name} has no question {name!r}; its questions are {names}.")

    @property
    def answer_names(self) -> list[str]:
        """All answer variable names, in question order."""
        return [name for question in self.questions for name in question.answers]


@dataclass
class CheckOutcome:
    """Result of one check: its description, whether it passed, and the hint if not."""

    description: str
    passed: bool
    message: str = ""


@dataclass
class CheckReport:
    """Results of the checks of one question, shown as a list in a notebook."""

    question: str
    outcomes: list[CheckOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(outcome.passed for outcome in self.outcomes)

    def __repr__(self) -> str:
        lines = [f"{self.question}: {'all checks passed' if self.passed else 'some checks failed'}"]
        for outcome in self.outcomes:
            mark = "passed" if outcome.passed else "FAILED"
            detail = f": {outcome.message}" if outcome.message else ""
            lines.append(f"  [{mark}] {outcome.description}{detail}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#b42318"
        items = []
        for outcome in self.outcomes:
            mark = "&#10003;" if outcome.passed else "&#10007;"
            detail = f" &mdash; {html.escape(outcome.message)}" if outcome.message else ""
            items.append(f"<li>{mark} {html.escape(outcome.description)}{detail}</li>")
        summary = "all checks passed" if self.passed else "some checks failed"
        return (
            f'<div class="r2ska-check"><strong style="color:{colour}">'
            f"{html.escape(self.question)}: {summary}</strong><ul>{''.join(items)}</ul></div>"
        )


def run_checks(checks: Sequence[Check], answers: Mapping[str, Any]) -> list[CheckOutcome]:
    """Run checks on answers; a check that raises anything but AssertionError fails with the error.

    Args:
        checks: The checks to run, in order.
        answers: Answer values by variable name; missing names make checks fail.

    Returns:
        One outcome per check.
    """
    outcomes = []
    for check in checks:
        try:
            check.function(answers)
        except AssertionError as error:
            outcomes.append(CheckOutcome(check.description, False, str(error)))
        except Exception as error:  # noqa: BLE001 - a student's value may break a check in any way
            outcomes.append(CheckOutcome(
                check.description, False, f"the check could not run ({type(error).__name__}: {error})"
            ))
        else:
            outcomes.append(CheckOutcome(check.description, True))
    return outcomes


class Checker:
    """Run an assignment's public checks on the variables of a notebook.

    Create one at the top of an exercise notebook and call :meth:`check` after
    each question, like ``grader.check("q1")``. It reads the answer variables from
    the calling namespace, which in Jupyter, Binder and Colab is the notebook's.

    Args:
        assignment: An :class:`Assignment`, or the name of one in
            ``r2ska.homework.ASSIGNMENTS``.
    """

    def __init__(self, assignment: Assignment | str) -> None:
        if isinstance(assignment, str):
            from r2ska.homework.mirabest import ASSIGNMENTS

            if assignment not in ASSIGNMENTS:
                raise KeyError(
                    f"Unknown assignment {assignment!r}: use one of {sorted(ASSIGNMENTS)}."
                )
            assignment = ASSIGNMENTS[assignment]
        self.assignment = assignment

    def check(self, question: str, namespace: Mapping[str, Any] | None = None) -> CheckReport:
        """Run the public checks of one question.

        Args:
            question: Question name, for example ``"q1"``.
            namespace: Variables to check; None reads the caller's globals.

        Returns:
            A report that a notebook shows as a list of passed and failed checks.
        """
        if namespace is None:
            frame = inspect.currentframe()
            namespace = frame.f_back.f_globals if frame and frame.f_back else {}
        spec = self.assignment.question(question)
        # A check may compare with an earlier question's answer, so pass all of them.
        answers = {name: namespace[name] for name in self.assignment.answer_names if name in namespace}
        return CheckReport(question, run_checks(spec.checks, answers))
