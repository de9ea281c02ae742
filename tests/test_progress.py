import subprocess

from r2ska import book
from r2ska.progress import PROGRESS_ENV, show_progress


def test_show_progress_follows_request(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert show_progress(True) is True
    assert show_progress(False) is False


def test_show_progress_off_by_environment(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert show_progress(True) is False


def test_book_build_turns_progress_off(monkeypatch, tmp_path):
    (tmp_path / "_config.yml").write_text("title: t\n")
    seen = {}

    def fake_run(command, check, env):
        seen["env"] = env
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(book.subprocess, "run", fake_run)
    assert book.build_book(tmp_path) == 0
    assert seen["env"][PROGRESS_ENV] == "0"
