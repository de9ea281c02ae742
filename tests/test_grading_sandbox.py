"""Tests for the sandboxed notebook runner, on tiny notebooks built in each test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

import r2ska
from r2ska.grading import sandbox
from r2ska.grading.sandbox import (
    BASE_PROTECTIONS,
    FILESYSTEM_PROTECTIONS,
    NAMESPACE_PROTECTIONS,
    SandboxLimits,
    WeakSandboxWarning,
    isolation_available,
    run_notebook,
)

# Kernel start takes 1 to 4 s here, so these limits leave room on a slow machine.
FAST = SandboxLimits(wall_seconds=60, cell_seconds=20)


def write_notebook(path: Path, *sources: str) -> Path:
    """Write a notebook with one code cell per source."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def need_namespaces() -> None:
    missing = set(NAMESPACE_PROTECTIONS) - set(isolation_available())
    if missing:
        pytest.skip(f"namespace isolation is unavailable on this machine: {sorted(missing)}")


@pytest.fixture
def need_read_only() -> None:
    if "read-only-filesystem" not in isolation_available():
        detail = sandbox._probe_isolation()[1]
        pytest.skip(f"read-only mounts are unavailable on this machine: {detail}")


@pytest.fixture
def visible_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path, kept visible in the sandbox by moving the masked temporary folder into it."""
    scratch_root = tmp_path / "scratch-root"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    return tmp_path


# Defines attempt(path, mode), which writes a line and returns "written", or the
# exception name and errno name of the failed write.
WRITE_ATTEMPT = (
    "import errno\n"
    "def attempt(path, mode):\n"
    "    try:\n"
    "        with open(path, mode) as file:\n"
    "            file.write('changed by the notebook')\n"
    "    except OSError as error:\n"
    "        return [type(error).__name__, errno.errorcode.get(error.errno)]\n"
    "    return 'written'\n"
)
READ_ONLY_ERROR = ["OSError", "EROFS"]


def count_processes(pattern: str) -> int:
    command = ["pgrep", "-f", pattern]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    return len(completed.stdout.split())


def test_clean_notebook_exports_plain_values(tmp_path):
    notebook = write_notebook(
        tmp_path / "clean.ipynb",
        "count = 3\nratio = 0.25\nlabel = 'galaxy'\nflag = True\nnothing = None",
        "items = [1, (2, 3)]\nconfig = {'lr': 1e-3, 'layers': [4, 8]}",
        "import numpy as np\nimage = np.arange(6, dtype=np.float32).reshape(2, 3)\n"
        "empty = np.zeros((0, 3))\nscalar = np.int64(7)\nnames = np.array(['a', 'bc'])",
        "import torch\ntensor = torch.tensor([[1.5, 2.0]], requires_grad=True)\n"
        "half = torch.ones(2, dtype=torch.bfloat16)",
        "func = print\nbig = 'x' * 5000",
    )
    limits = SandboxLimits(wall_seconds=60, cell_seconds=20, answer_bytes=4000)
    requested = [
        "count", "ratio", "label", "flag", "nothing", "items", "config", "image", "empty",
        "scalar", "names", "tensor", "half", "func", "big", "undefined",
    ]  # fmt: skip

    result = run_notebook(notebook, requested, limits=limits)

    assert result.status == "ok", result.reason
    assert result.errors == []
    assert result.output_truncated is False
    assert result.missing == ["undefined"]
    answers = result.answers
    assert answers["count"] == 3
    assert answers["ratio"] == 0.25
    assert answers["label"] == "galaxy"
    assert answers["flag"] is True
    assert answers["nothing"] is None
    assert answers["items"] == [1, [2, 3]]
    assert answers["config"] == {"lr": 1e-3, "layers": [4, 8]}
    assert answers["image"].dtype == np.float32
    np.testing.assert_array_equal(answers["image"], np.arange(6).reshape(2, 3))
    assert answers["empty"].shape == (0, 3)
    assert answers["scalar"].shape == ()
    assert answers["scalar"] == 7
    assert answers["names"].tolist() == ["a", "bc"]
    np.testing.assert_array_equal(answers["tensor"], [[1.5, 2.0]])
    assert answers["half"].dtype == np.float32
    assert answers["func"] == {"__unsupported__": "builtin_function_or_method"}
    assert set(answers["big"]) == {"__too_large__"}


def test_clean_notebook_lists_isolation(tmp_path):
    notebook = write_notebook(tmp_path / "tiny.ipynb", "x = 1")
    result = run_notebook(notebook, ["x"], limits=FAST)

    assert result.answers == {"x": 1}
    assert result.isolation == isolation_available()
    assert result.isolation[: len(BASE_PROTECTIONS)] == list(BASE_PROTECTIONS)


def test_malformed_json_is_invalid_notebook(tmp_path):
    notebook = tmp_path / "broken.ipynb"
    notebook.write_text('{"cells": [', encoding="utf-8")

    result = run_notebook(notebook, ["x"], limits=FAST)

    assert result.status == "invalid-notebook"
    assert "not a valid Jupyter notebook" in result.reason
    assert result.answers == {}
    assert result.missing == ["x"]


def test_json_that_is_no_notebook_is_invalid(tmp_path):
    notebook = tmp_path / "data.ipynb"
    notebook.write_text('{"answer": 42}', encoding="utf-8")

    result = run_notebook(notebook, ["answer"], limits=FAST)

    assert result.status == "invalid-notebook"
    assert result.answers == {}


def test_oversized_notebook_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_NOTEBOOK_BYTES", 100)
    notebook = write_notebook(tmp_path / "big.ipynb", "x = 1  # " + "padding " * 50)

    result = run_notebook(notebook, ["x"], limits=FAST)

    assert result.status == "invalid-notebook"
    assert "more than the 100 bytes limit" in result.reason


def test_missing_notebook_is_invalid(tmp_path):
    result = run_notebook(tmp_path / "absent.ipynb", ["x"], limits=FAST)

    assert result.status == "invalid-notebook"
    assert "absent.ipynb" in result.reason


def test_failing_cells_do_not_stop_later_cells(tmp_path):
    notebook = write_notebook(
        tmp_path / "errors.ipynb",
        "1 / 0",
        "import sys\nsys.exit()",
        "import os\nos.chdir('/')\nanswer = 42",
    )

    result = run_notebook(notebook, ["answer"], limits=FAST)

    assert result.status == "ok"
    assert result.answers == {"answer": 42}
    assert len(result.errors) == 2
    assert result.errors[0].startswith("cell 1: ZeroDivisionError")
    assert result.errors[1].startswith("cell 2: SystemExit")
    assert "cell 1" in result.reason


def test_os_exit_reports_kernel_died(tmp_path):
    notebook = write_notebook(
        tmp_path / "exit.ipynb", "before = 1", "import os\nos._exit(1)", "after = 2"
    )

    result = run_notebook(notebook, ["before", "after"], limits=FAST)

    assert result.status == "kernel-died"
    assert "cell 2" in result.reason
    assert "exit code 1" in result.reason
    assert result.answers == {}
    assert result.missing == ["before", "after"]


def test_infinite_loop_hits_cell_timeout(tmp_path):
    notebook = write_notebook(
        tmp_path / "loop.ipynb", "done = 1", "while True:\n    pass", "after = 2"
    )
    limits = SandboxLimits(wall_seconds=60, cell_seconds=3)

    result = run_notebook(notebook, ["done", "after"], limits=limits)

    assert result.status == "timeout"
    assert "Cell 2 timed out after 3 s" in result.reason
    # The kernel is interrupted, so the answers of earlier cells still count.
    assert result.answers == {"done": 1}
    assert result.missing == ["after"]


def test_ignored_interrupt_hits_wall_timeout(tmp_path):
    notebook = write_notebook(
        tmp_path / "stubborn.ipynb",
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    )
    limits = SandboxLimits(wall_seconds=8, cell_seconds=600)

    result = run_notebook(notebook, ["x"], limits=limits)

    assert result.status == "timeout"
    assert "after 8 s in cell 1" in result.reason
    assert any(error.startswith("Answer export: timed out") for error in result.errors)


def test_huge_allocation_reports_memory(tmp_path):
    notebook = write_notebook(tmp_path / "memory.ipynb", "x = bytearray(50 * 2**30)", "after = 1")

    result = run_notebook(notebook, ["after"], limits=FAST)

    assert result.status == "memory"
    assert "cell 1" in result.reason.lower()
    assert result.errors[0].startswith("cell 1: MemoryError")
    assert result.answers == {"after": 1}


def test_output_flood_is_truncated(tmp_path):
    notebook = write_notebook(
        tmp_path / "flood.ipynb", "for _ in range(10**6):\n    print('x' * 1000)"
    )
    limits = SandboxLimits(wall_seconds=60, cell_seconds=5, output_bytes=10_000)

    result = run_notebook(notebook, [], limits=limits)

    assert result.status in ("ok", "timeout"), result.reason
    assert result.output_truncated is True


def test_masked_paths_are_hidden(tmp_path, monkeypatch, need_namespaces):
    # The working folders live elsewhere, so only masked_paths can hide tmp_path's files.
    scratch_root = tmp_path / "scratch-root"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "answers.txt").write_text("TOPSECRET-FOLDER")
    single = tmp_path / "key.txt"
    single.write_text("TOPSECRET-FILE")
    visible = tmp_path / "visible.txt"
    visible.write_text("public")
    notebook = write_notebook(
        tmp_path / "peek.ipynb",
        "import os\n"
        "def read(path):\n"
        "    try:\n"
        "        return open(path).read()\n"
        "    except OSError as error:\n"
        "        return repr(error)\n"
        f"folder = read({str(solutions / 'answers.txt')!r})\n"
        f"listing = os.listdir({str(solutions)!r})\n"
        f"single = read({str(single)!r})\n"
        f"control = read({str(visible)!r})",
    )

    result = run_notebook(
        notebook,
        ["folder", "listing", "single", "control"],
        masked_paths=[solutions, single],
        limits=FAST,
    )

    assert result.status == "ok", result.reason
    assert result.answers["control"] == "public"
    assert "TOPSECRET" not in result.answers["folder"]
    assert result.answers["listing"] == []
    assert result.answers["single"] == ""


def test_other_runs_in_temp_folder_are_hidden(tmp_path, need_namespaces):
    neighbour = Path(tempfile.mkdtemp(prefix="r2ska-sandbox-neighbour-", dir=sandbox.scratch_parent()))
    try:
        (neighbour / "submission.ipynb").write_text("OTHER-STUDENT")
        notebook = write_notebook(
            tmp_path / "neighbour.ipynb",
            f"import os\nseen = os.path.exists({str(neighbour)!r})",
        )

        result = run_notebook(notebook, ["seen"], limits=FAST)
    finally:
        (neighbour / "submission.ipynb").unlink()
        neighbour.rmdir()

    assert result.answers == {"seen": False}


def test_network_is_unreachable(tmp_path, need_namespaces):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        notebook = write_notebook(
            tmp_path / "net.ipynb",
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
            "    outcome = 'connected'\n"
            "except OSError as error:\n"
            "    outcome = type(error).__name__",
        )

        result = run_notebook(notebook, ["outcome"], limits=FAST)

    assert result.status == "ok", result.reason
    assert result.answers["outcome"] != "connected"


def test_files_outside_scratch_are_read_only(visible_tmp_path, need_read_only):
    outside = visible_tmp_path / "outside"
    outside.mkdir()
    existing = outside / "existing.txt"
    existing.write_text("original")
    new_file = outside / "new.txt"
    package_file = Path(r2ska.__file__).parent / "evil.py"
    notebook = write_notebook(
        visible_tmp_path / "writer.ipynb",
        WRITE_ATTEMPT,
        f"new = attempt({str(new_file)!r}, 'x')\n"
        f"package = attempt({str(package_file)!r}, 'x')\n"
        f"append = attempt({str(existing)!r}, 'a')\n"
        "local = attempt('local.txt', 'x')\n"
        "local_text = open('local.txt').read()",
    )

    try:
        result = run_notebook(
            notebook, ["new", "package", "append", "local", "local_text"], limits=FAST
        )
    finally:
        package_file_written = package_file.exists()
        package_file.unlink(missing_ok=True)

    assert result.status == "ok", result.reason
    assert "read-only-filesystem" in result.isolation
    assert result.answers["new"] == READ_ONLY_ERROR
    assert result.answers["package"] == READ_ONLY_ERROR
    assert result.answers["append"] == READ_ONLY_ERROR
    assert result.answers["local"] == "written"
    assert result.answers["local_text"] == "changed by the notebook"
    assert not new_file.exists()
    assert not package_file_written
    assert existing.read_text() == "original"


def test_system_folders_are_read_only(tmp_path, need_read_only):
    dev_file = Path(f"/dev/r2ska-sandbox-test-{os.getpid()}")
    host_shm_file = Path(f"/dev/shm/r2ska-sandbox-test-{os.getpid()}")
    notebook = write_notebook(
        tmp_path / "system.ipynb",
        WRITE_ATTEMPT,
        # access() only checks the permission, so the host's sysctl is never written.
        "import os\n"
        "core_pattern = os.access('/proc/sys/kernel/core_pattern', os.W_OK)\n"
        f"dev = attempt({str(dev_file)!r}, 'x')\n"
        "null = attempt('/dev/null', 'w')\n"
        f"shm = attempt({str(host_shm_file)!r}, 'x')",
    )

    try:
        result = run_notebook(notebook, ["core_pattern", "dev", "null", "shm"], limits=FAST)
    finally:
        dev_file_written = dev_file.exists()
        dev_file.unlink(missing_ok=True)
        shm_file_leaked = host_shm_file.exists()
        host_shm_file.unlink(missing_ok=True)

    assert result.status == "ok", result.reason
    assert result.answers["core_pattern"] is False
    assert result.answers["dev"] == READ_ONLY_ERROR
    assert not dev_file_written
    assert result.answers["null"] == "written"
    # The sandbox's /dev/shm is a private tmpfs, so the file never reaches the host's.
    assert result.answers["shm"] == "written"
    assert not shm_file_leaked


def test_own_namespace_cannot_remount_writable(tmp_path, need_read_only):
    # unshare() gives the child every capability in its new user namespace, and no
    # execve() follows to drop them, but the copied mounts keep a locked read-only flag.
    remount = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "CLONE_NEWUSER, CLONE_NEWNS, MS_REMOUNT, MS_BIND = 0x10000000, 0x20000, 32, 4096\n"
        "if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:\n"
        "    print('unshare failed: ' + os.strerror(ctypes.get_errno()))\n"
        "elif libc.mount(None, b'/', None, ctypes.c_ulong(MS_REMOUNT | MS_BIND), None) != 0:\n"
        "    print(os.strerror(ctypes.get_errno()))\n"
        "else:\n"
        "    print('remounted')\n"
    )
    notebook = write_notebook(
        tmp_path / "remount.ipynb",
        "import subprocess, sys\n"
        f"command = [sys.executable, '-c', {remount!r}]\n"
        "completed = subprocess.run(command, capture_output=True, text=True)\n"
        "outcome = completed.stdout.strip() or completed.stderr.strip()",
    )

    result = run_notebook(notebook, ["outcome"], limits=FAST)

    assert result.status == "ok", result.reason
    assert result.answers["outcome"] == "Operation not permitted"


def test_torch_and_matplotlib_work_read_only(tmp_path, need_read_only):
    notebook = write_notebook(
        tmp_path / "libraries.ipynb",
        "import torch\n"
        "product = (torch.arange(6.0).reshape(2, 3) @ torch.ones(3)).tolist()",
        "import os\n"
        "import matplotlib\n"
        "import matplotlib.pyplot as plt\n"
        "figure, axes = plt.subplots()\n"
        "axes.plot([0, 1], [1, 0])\n"
        "figure.savefig('plot.png')\n"
        "png_bytes = os.path.getsize('plot.png')\n"
        "backend = matplotlib.get_backend()\n"
        "config_dir = matplotlib.get_configdir()\n"
        "workdir = os.getcwd()",
    )

    result = run_notebook(
        notebook, ["product", "png_bytes", "backend", "config_dir", "workdir"], limits=FAST
    )

    assert result.status == "ok", result.reason
    assert result.errors == []
    assert result.answers["product"] == [3.0, 12.0]
    assert result.answers["png_bytes"] > 0
    assert result.answers["backend"].lower() == "agg"
    assert result.answers["config_dir"].startswith(result.answers["workdir"] + os.sep)


def test_data_mirror_is_readable_not_writable(visible_tmp_path, need_read_only):
    mirror = visible_tmp_path / "mirror"
    (mirror / "MNIST" / "raw").mkdir(parents=True)
    sample = mirror / "MNIST" / "raw" / "sample.txt"
    sample.write_text("mirror data")
    notebook = write_notebook(
        visible_tmp_path / "mirror.ipynb",
        WRITE_ATTEMPT,
        "import os\n"
        "path = os.path.join(os.environ['R2SKA_DATA_MIRROR'], 'MNIST', 'raw', 'sample.txt')\n"
        "content = open(path).read()\n"
        "append = attempt(path, 'a')",
    )

    result = run_notebook(
        notebook, ["content", "append"], limits=FAST, env={"R2SKA_DATA_MIRROR": str(mirror)}
    )

    assert result.status == "ok", result.reason
    assert result.answers["content"] == "mirror data"
    assert result.answers["append"] == READ_ONLY_ERROR
    assert sample.read_text() == "mirror data"


def test_writable_paths_stay_writable(visible_tmp_path, need_read_only):
    shared = visible_tmp_path / "shared"
    secret = shared / "secret"
    secret.mkdir(parents=True)
    (secret / "key.txt").write_text("TOPSECRET")
    notebook = write_notebook(
        visible_tmp_path / "shared.ipynb",
        WRITE_ATTEMPT,
        "import os\n"
        f"written = attempt({str(shared / 'out.txt')!r}, 'x')\n"
        f"secret_listing = os.listdir({str(secret)!r})\n"
        f"secret_write = attempt({str(secret / 'new.txt')!r}, 'x')",
    )

    result = run_notebook(
        notebook,
        ["written", "secret_listing", "secret_write"],
        masked_paths=[secret],
        writable_paths=[shared],
        limits=FAST,
    )

    assert result.status == "ok", result.reason
    assert result.answers["written"] == "written"
    assert (shared / "out.txt").read_text() == "changed by the notebook"
    # A mask inside a writable folder stays in place and read-only.
    assert result.answers["secret_listing"] == []
    assert result.answers["secret_write"] == READ_ONLY_ERROR
    assert sorted(path.name for path in secret.iterdir()) == ["key.txt"]


def test_failed_remount_is_sandbox_error(visible_tmp_path, monkeypatch, need_read_only):
    absent = visible_tmp_path / "absent"
    build_command = sandbox._worker_command

    def command_with_absent_folder(*args, **kwargs):
        # The worker's bind mount of a missing folder fails, as a rejected remount would.
        return [*build_command(*args, **kwargs), f"--writable={absent}"]

    monkeypatch.setattr(sandbox, "_worker_command", command_with_absent_folder)
    notebook = write_notebook(visible_tmp_path / "never.ipynb", "ran = True")

    result = run_notebook(notebook, ["ran"], limits=FAST)

    assert result.status == "sandbox-error"
    assert str(absent) in result.reason
    assert result.answers == {}
    assert result.missing == ["ran"]


def test_missing_read_only_protection_warns(tmp_path, monkeypatch, need_namespaces):
    protections = BASE_PROTECTIONS + NAMESPACE_PROTECTIONS
    monkeypatch.setattr(sandbox, "_probe_isolation", lambda: (protections, "a test"))
    notebook = write_notebook(tmp_path / "weak.ipynb", "x = 1")

    with pytest.warns(WeakSandboxWarning, match="without read-only-filesystem because a test"):
        result = run_notebook(notebook, ["x"], limits=FAST)

    assert result.status == "ok", result.reason
    assert result.answers == {"x": 1}
    assert result.isolation == list(protections)
    assert not set(FILESYSTEM_PROTECTIONS) & set(result.isolation)


@pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "no-namespaces"])
def test_daemons_do_not_survive(tmp_path, monkeypatch, namespaces):
    if namespaces:
        missing = set(NAMESPACE_PROTECTIONS) - set(isolation_available())
        if missing:
            pytest.skip(f"namespace isolation is unavailable on this machine: {sorted(missing)}")
    else:
        monkeypatch.setattr(sandbox, "_probe_isolation", lambda: (BASE_PROTECTIONS, "a test"))
    marker = f"sleep {900000 + os.getpid() % 1000}.5"
    notebook = write_notebook(
        tmp_path / "daemon.ipynb",
        "import subprocess\n"
        f"subprocess.Popen({marker.split()!r}, start_new_session=True)\n"
        f"subprocess.Popen(['sh', '-c', 'setsid {marker} &'])\n"
        "started = True",
    )
    before = count_processes(marker)

    if namespaces:
        result = run_notebook(notebook, ["started"], limits=FAST)
    else:
        with pytest.warns(WeakSandboxWarning, match="without net-namespace"):
            result = run_notebook(notebook, ["started"], limits=FAST)

    assert result.answers == {"started": True}
    assert count_processes(marker) == before


def test_wall_kill_ends_process_tree(tmp_path):
    marker = f"sleep {800000 + os.getpid() % 1000}.5"
    command = ["sh", "-c", f"{marker} & setsid {marker} & {marker}"]

    deadline = time.monotonic() + 1

    returncode = sandbox._run_worker(command, tmp_path, {"PATH": os.defpath}, deadline)

    assert returncode is None
    assert count_processes(marker) == 0


@pytest.mark.parametrize(
    "field", ["wall_seconds", "cell_seconds", "memory_bytes", "output_bytes", "answer_bytes"]
)
@pytest.mark.parametrize("value", [0, -1, float("nan")])
def test_limits_reject_non_positive_values(field, value):
    with pytest.raises(ValueError, match=field):
        SandboxLimits(**{field: value})


@pytest.mark.parametrize("names", ["answer", ["not an identifier"], ["class"], [3]])
def test_invalid_answer_names_raise(tmp_path, names):
    with pytest.raises(ValueError, match="answer"):
        run_notebook(tmp_path / "unused.ipynb", names)


def test_mask_that_hides_python_raises(tmp_path):
    with pytest.raises(ValueError, match="would hide"):
        run_notebook(tmp_path / "unused.ipynb", ["x"], masked_paths=[Path(sys.prefix)])


def test_missing_mask_raises(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        run_notebook(tmp_path / "unused.ipynb", ["x"], masked_paths=[tmp_path / "absent"])


@pytest.mark.parametrize(
    ("choose_path", "message"),
    [
        (lambda tmp_path: Path("/"), "overlaps"),
        (lambda tmp_path: Path(r2ska.__file__).parent, "overlaps"),
        (lambda tmp_path: Path(sys.prefix) / "lib", "overlaps"),
        (lambda tmp_path: Path("/dev"), "overlaps"),
        (lambda tmp_path: tmp_path / "absent", "does not exist"),
        (lambda tmp_path: Path(r2ska.__file__), "not a folder"),
        (lambda tmp_path: sandbox.scratch_parent(), "lies inside"),
    ],
    ids=["root", "package", "python", "dev", "missing", "file", "scratch-parent"],
)
def test_invalid_writable_path_raises(tmp_path, choose_path, message):
    with pytest.raises(ValueError, match=message):
        run_notebook(tmp_path / "unused.ipynb", ["x"], writable_paths=[choose_path(tmp_path)])


def test_invalid_env_raises(tmp_path):
    with pytest.raises(ValueError, match="environment variable"):
        run_notebook(tmp_path / "unused.ipynb", ["x"], env={"A=B": "1"})


@pytest.mark.parametrize(
    "encoded",
    [
        {"__ndarray__": [1, 2], "dtype": "object", "shape": [2]},
        {"__ndarray__": [[1, 2], [3]], "dtype": "int64", "shape": [2, 2]},
        {"__ndarray__": [1, 2, 3, 4], "dtype": "int64", "shape": [2, 2]},
        {"__ndarray__": [1], "dtype": "int64", "shape": [-1]},
        {"__ndarray__": [1], "dtype": "no such dtype", "shape": [1]},
    ],
)
def test_malformed_array_answers_are_flagged(encoded):
    assert sandbox._decode_answer(encoded) == {"__unsupported__": "invalid array encoding"}
