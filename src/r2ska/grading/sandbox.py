"""Sandboxed execution of untrusted student notebooks, returning their exported answers."""

from __future__ import annotations

import functools
import json
import keyword
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from r2ska.grading import _worker

MAX_NOTEBOOK_BYTES = 50 * 2**20
"""Largest notebook file that run_notebook accepts; larger ones are "invalid-notebook"."""

BASE_PROTECTIONS = ("rlimits", "process-group")
"""Protections that every run has: resource limits and killing the worker's process tree."""

NAMESPACE_PROTECTIONS = ("net-namespace", "mount-namespace", "pid-namespace")
"""Protections that need Linux user namespaces and the util-linux ``unshare`` command."""

FILESYSTEM_PROTECTIONS = ("read-only-filesystem",)
"""Protections that need NAMESPACE_PROTECTIONS and bind remounts inside the namespace."""

STATUSES = ("invalid-notebook", "sandbox-error", "timeout", "memory", "kernel-died", "ok")
"""Possible SandboxResult.status values, most severe first."""

# --fork makes the worker process 1 of the new pid namespace, so every process in the
# namespace dies with it. --kill-child kills the worker if unshare itself is killed.
# --mount-proc mounts a /proc that shows only the sandbox's processes.
_UNSHARE_FLAGS = (
    "--user",
    "--map-root-user",
    "--net",
    "--mount",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
)
_NOTEBOOK_FILE = "submission.ipynb"
_ANSWERS_FILE = "answers.json"
_RESULT_FILE = "result.json"
_PROGRESS_FILE = "progress.json"
_WORKER_LOG = "worker.log"
_MAX_RESULT_BYTES = 256 * 1024
_MAX_PROGRESS_BYTES = 1024
_LOG_TAIL_BYTES = 4096
_MAX_REASON_CHARS = 500
_MAX_ERRORS = 50
_MAX_ERROR_CHARS = 300
_PROBE_TIMEOUT_SECONDS = 60
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that contains r2ska/
_SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))
_INVALID_ARRAY = {_worker.UNSUPPORTED_KEY: "invalid array encoding"}


class WeakSandboxWarning(UserWarning):
    """Warned when a notebook runs without the namespace or filesystem protections."""


class _UntrustedFileError(Exception):
    """Raised when a file written inside the sandbox is missing its expected form."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one notebook run.

    Attributes:
        wall_seconds: Time for the whole run, kernel start included. The cells may
            not use the last 10 % of it (at least 3 s, at most 30 s or half), which
            is kept for the interrupt, the answer export and the kernel shutdown.
        cell_seconds: Time for one cell.
        memory_bytes: RLIMIT_AS, the virtual address space of the worker and of each
            kernel process. The default leaves room for ``import torch``: a torch
            2.14.1+cu130 import and a 2000x2000 matmul reached a VmPeak of 3.3 GiB
            with 2 threads and 5.1 GiB with 64 threads (4.3 GiB with
            MALLOC_ARENA_MAX=2, which the sandbox sets), measured on a 2-core
            x86_64 Linux machine with ``torch.set_num_threads``. More threads on a
            larger machine need more.
        output_bytes: Characters of cell output kept in total. Later outputs are
            dropped and SandboxResult.output_truncated is set.
        answer_bytes: Maximum size of the exported answers in characters of JSON.
            Larger answers arrive as ``{"__too_large__": ...}``.
        file_bytes: RLIMIT_FSIZE, the largest file that a cell may write.

    Raises:
        ValueError: A limit is not a positive finite number.
    """

    wall_seconds: float = 900.0
    cell_seconds: float = 600.0
    memory_bytes: int = 8 * 2**30
    output_bytes: int = 1_000_000
    answer_bytes: int = 5_000_000
    file_bytes: int = 2**30

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"SandboxLimits.{item.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"SandboxLimits.{item.name} must be positive and finite, got {value!r}"
                )


@dataclass
class SandboxResult:
    """Outcome of one sandboxed notebook run.

    ``status`` names the most severe event of the run, in the order of STATUSES.
    "invalid-notebook" means the file is not a usable notebook, and "sandbox-error"
    that the sandbox itself failed. "memory" means a cell raised MemoryError (or
    torch's allocation error), or the kernel died with a memory error in its log.
    Cells that raise do not change the status: a run with failing cells is "ok"
    with non-empty ``errors``, because later cells still run and their answers count.

    Attributes:
        status: One of STATUSES.
        answers: The requested answers that the notebook defined, decoded from JSON.
            Arrays and tensors come back as numpy arrays, tuples as lists, and values
            JSON cannot carry as ``{"__unsupported__": type name}``. Empty when the
            kernel died or the run timed out before the export.
        missing: Requested names that have no exported answer.
        reason: One sentence about the run, meant for the student's feedback.
        errors: One line per cell that raised: cell number (counting all cells from
            1), exception name and message, shortened.
        output_truncated: Whether outputs were dropped at SandboxLimits.output_bytes.
        isolation: Protections that were active, from BASE_PROTECTIONS,
            NAMESPACE_PROTECTIONS and FILESYSTEM_PROTECTIONS.
    """

    status: str
    answers: dict[str, object]
    missing: list[str]
    reason: str
    errors: list[str]
    output_truncated: bool
    isolation: list[str]


def isolation_available() -> list[str]:
    """Probe which protections work on this machine; the probe runs once per process.

    The probe starts the worker under ``unshare`` and checks inside that a masked
    folder is empty and cannot be unmounted, that the worker is process 1 of a pid
    namespace and that only the loopback interface exists. Then it remounts the
    filesystem read-only. The working folder must stay writable, and its parent
    folder, the r2ska package and the Python installation must not.

    Returns:
        BASE_PROTECTIONS, followed by NAMESPACE_PROTECTIONS when the namespace
        checks passed and by FILESYSTEM_PROTECTIONS when the read-only checks passed.
    """
    return list(_probe_isolation()[0])


@functools.lru_cache(maxsize=1)
def _probe_isolation() -> tuple[tuple[str, ...], str]:
    # All namespaces or none: the environments that block one of them (Docker's
    # default seccomp profile, AppArmor's user-namespace restriction) block them all.
    unshare = shutil.which("unshare")
    if unshare is None:
        return BASE_PROTECTIONS, "the unshare command was not found"

    with tempfile.TemporaryDirectory(prefix="r2ska-probe-") as folder:
        # The working folder is a subfolder, so the probe can check that the folder
        # around it becomes read-only.
        workdir = Path(folder, "work")
        workdir.mkdir()
        mask = Path(folder, "mask")
        mask.mkdir()
        Path(mask, "probe.txt").write_text("hidden by the mask")
        command = [unshare, *_UNSHARE_FLAGS, *_worker_python(), "--probe", f"--mask={mask}"]
        try:
            completed = subprocess.run(
                command,
                cwd=workdir,
                env=_sandbox_env(workdir, {}),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return BASE_PROTECTIONS, f"the isolation probe failed: {error}"

    detail = _last_line(completed.stderr) or f"exit status {completed.returncode}"
    if completed.returncode == _worker.PROBE_READ_ONLY_FAILED:
        return BASE_PROTECTIONS + NAMESPACE_PROTECTIONS, f"the read-only probe failed: {detail}"
    if completed.returncode != 0:
        return BASE_PROTECTIONS, f"the isolation probe failed: {detail}"
    return BASE_PROTECTIONS + NAMESPACE_PROTECTIONS + FILESYSTEM_PROTECTIONS, ""


def run_notebook(
    notebook: Path,
    answer_names: Sequence[str],
    *,
    masked_paths: Sequence[Path] = (),
    writable_paths: Sequence[Path] = (),
    limits: SandboxLimits = SandboxLimits(),
    env: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Execute an untrusted notebook in a sandbox and export the named answers.

    The notebook runs in a fresh temporary folder, which is deleted afterwards,
    through a worker process (``r2ska.grading._worker``) and a python3 kernel under
    SandboxLimits. Where user namespaces work, the worker also runs without network
    (only a loopback interface that is down), in its own pid namespace, and with
    ``masked_paths`` and the temporary folder of other runs hidden behind empty
    read-only mounts. Every other mount is then read-only, except the fresh folder,
    ``writable_paths`` and a private /dev/shm, so the notebook cannot change the
    r2ska package or anything else that later runs use. Where a protection is
    unavailable, the notebook runs without it and WeakSandboxWarning is issued.

    The answers are values that the student's kernel wrote, so they are untrusted:
    compare them, never execute them.

    Args:
        notebook: The student's .ipynb file, at most MAX_NOTEBOOK_BYTES.
        answer_names: Global variable names to export after the last cell.
        masked_paths: Existing files or folders that the notebook must not see, such
            as solutions, hidden checks and other students' work. They may not
            contain the Python installation, the r2ska package, /dev or /proc.
        writable_paths: Existing folders that the notebook may change besides its
            temporary folder. They may not overlap the Python installation, the
            r2ska package, /proc, /sys or /dev, nor lie inside a masked path or
            the temporary folder of the runs. Mounts inside them stay read-only.
        limits: Time, memory and size limits.
        env: Variables added to the sandbox's minimal environment, such as
            R2SKA_DATA_MIRROR or R2SKA_CACHE. The caller's environment is not passed on.

    Returns:
        The outcome. Anything the notebook does ends up here, never as an exception.

    Raises:
        ValueError: An answer name is not an identifier, a masked path does not
            exist or would hide what the sandbox needs, a writable path is not an
            allowed folder, or ``env`` is malformed.
    """
    names = _check_names(answer_names)
    masks = _check_masks(masked_paths)
    writable = _check_writable(writable_paths, masks)
    extra_env = _check_env(env)
    protections, probe_detail = _probe_isolation()
    if "mount-namespace" not in protections:
        absent = ", ".join(NAMESPACE_PROTECTIONS + FILESYSTEM_PROTECTIONS)
        warnings.warn(
            f"Running {notebook} without {absent} because {probe_detail}: the notebook "
            "can use the network, read the masked paths and change any file that "
            "this process can write.",
            WeakSandboxWarning,
            stacklevel=2,
        )
    elif "read-only-filesystem" not in protections:
        warnings.warn(
            f"Running {notebook} without read-only-filesystem because {probe_detail}: "
            "the notebook can change any file that this process can write, such as "
            "the r2ska package that later runs import.",
            WeakSandboxWarning,
            stacklevel=2,
        )

    scratch = Path(tempfile.mkdtemp(prefix="r2ska-sandbox-", dir=scratch_parent()))
    try:
        # Files written by the notebook are read through this descriptor, so renaming
        # the folder or swapping in a symlink cannot redirect the reads.
        scratch_fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return _run_in_scratch(
                Path(notebook),
                names,
                _WorkerMounts(masks, writable, protections),
                limits,
                extra_env,
                scratch,
                scratch_fd,
            )
        finally:
            os.close(scratch_fd)
    finally:
        _remove_scratch(scratch)


@dataclass(frozen=True)
class _WorkerMounts:
    """Checked mount settings for one run, and the protections that the probe found."""

    masks: list[Path]
    writable: list[Path]
    protections: tuple[str, ...]


def _run_in_scratch(
    notebook: Path,
    names: list[str],
    mounts: _WorkerMounts,
    limits: SandboxLimits,
    extra_env: dict[str, str],
    scratch: Path,
    scratch_fd: int,
) -> SandboxResult:
    isolation = list(mounts.protections)
    problem = _copy_notebook(notebook, scratch / _NOTEBOOK_FILE)
    if problem:
        return _empty_result("invalid-notebook", problem, names, isolation)

    # The worker gets the parent's deadline, so its own start-up time counts too.
    deadline = time.monotonic() + limits.wall_seconds
    command = _worker_command(names, limits, deadline, mounts)
    returncode = _run_worker(command, scratch, _sandbox_env(scratch, extra_env), deadline)

    if returncode is None:
        result = _timed_out_result(scratch_fd, names, limits, isolation)
    else:
        result = _worker_result(scratch_fd, returncode, names, isolation)
    if result.status != "invalid-notebook":
        _add_answers(result, scratch_fd, names, limits)
    return result


def _check_names(answer_names: Sequence[str]) -> list[str]:
    if isinstance(answer_names, str):
        raise ValueError(
            f"answer_names must be a sequence of names, got the string {answer_names!r}; "
            "wrap a single name in a list."
        )
    names: list[str] = []
    for name in answer_names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(
                f"answer name {name!r} is not a Python identifier; pass the variable "
                "names that the notebook defines."
            )
        if name not in names:
            names.append(name)
    return names


def _required_paths() -> list[Path]:
    executable_folder = Path(sys.executable).resolve().parent
    paths = [Path(sys.prefix), Path(sys.base_prefix), executable_folder, _PACKAGE_PARENT]
    return [path.resolve() for path in paths] + [Path("/dev/null"), Path("/proc/self")]


def scratch_parent() -> Path:
    """Return the private folder, under the temporary folder, that contains every run's working folder.

    Only this folder is masked in each run, not the whole temporary folder, which may
    contain the repository or the Python installation (a CI checkout under /tmp).

    Raises:
        RuntimeError: If the folder exists but is not a folder private to this user.
    """
    parent = Path(tempfile.gettempdir()).resolve() / f"r2ska-sandboxes-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    info = parent.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RuntimeError(
            f"{parent} must be a folder owned by this user with mode 700, so that other "
            "users cannot read the submissions in it; delete it and run again."
        )
    return parent


def _resolve_existing(path: Path | str, role: str, fix: str) -> Path:
    try:
        return Path(path).resolve(strict=True)
    except OSError as error:
        raise ValueError(f"{role} {str(path)!r} does not exist ({error.strerror}); {fix}") from error


def _check_masks(masked_paths: Sequence[Path]) -> list[Path]:
    masks: list[Path] = []
    for path in masked_paths:
        resolved = _resolve_existing(path, "masked path", "pass only existing files or folders.")

        for required in _required_paths():
            if required == resolved or resolved in required.parents:
                raise ValueError(
                    f"masked path {str(path)!r} would hide {required}, which the sandbox "
                    "needs; mask a narrower folder."
                )
        masks.append(resolved)
    return masks


def _check_writable(writable_paths: Sequence[Path], masks: list[Path]) -> list[Path]:
    if isinstance(writable_paths, (str, Path)):
        raise ValueError(
            f"writable_paths must be a sequence of folders, got {str(writable_paths)!r}; "
            "wrap a single folder in a list."
        )
    protected = [*_required_paths(), *_SYSTEM_FOLDERS]
    hidden = [*masks, scratch_parent()]
    folders: list[Path] = []
    for path in writable_paths:
        resolved = _resolve_existing(path, "writable path", "create the folder first.")
        if not resolved.is_dir():
            raise ValueError(f"writable path {str(path)!r} is not a folder; pass folders only.")

        for folder in protected:
            if folder == resolved or folder in resolved.parents or resolved in folder.parents:
                raise ValueError(
                    f"writable path {str(path)!r} overlaps {folder}, which must stay "
                    "read-only so that a notebook cannot change later runs; pass a "
                    "separate folder."
                )
        for folder in hidden:
            if folder == resolved or folder in resolved.parents:
                raise ValueError(
                    f"writable path {str(path)!r} lies inside {folder}, which the sandbox "
                    "hides; pass a folder outside the masked paths and the temporary folder."
                )
        folders.append(resolved)
    return folders


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"environment variable name {key!r} is invalid.")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"environment variable {key} must be a str without NUL, got {value!r}")
        checked[key] = value
    return checked


def _copy_notebook(source: Path, target: Path) -> str:
    try:
        info = source.stat()
    except OSError as error:
        return f"The notebook {source} could not be read: {error.strerror}."
    if not stat.S_ISREG(info.st_mode):
        return f"The notebook {source} is not a regular file."

    limit_text = _format_size(MAX_NOTEBOOK_BYTES)
    if info.st_size > MAX_NOTEBOOK_BYTES:
        size_text = _format_size(info.st_size)
        return f"The notebook is {size_text}, more than the {limit_text} limit."
    try:
        with source.open("rb") as file:
            data = file.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as error:
        return f"The notebook {source} could not be read: {error.strerror}."
    if len(data) > MAX_NOTEBOOK_BYTES:
        return f"The notebook grew past the {limit_text} limit while it was copied."
    target.write_bytes(data)
    return ""


def _format_size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"


def _worker_python() -> list[str]:
    return [sys.executable, "-m", "r2ska.grading._worker"]


def _worker_command(
    names: list[str], limits: SandboxLimits, deadline: float, mounts: _WorkerMounts
) -> list[str]:
    command = [
        *_worker_python(),
        _NOTEBOOK_FILE,
        _ANSWERS_FILE,
        _RESULT_FILE,
        f"--names={','.join(names)}",
        f"--cell-timeout={limits.cell_seconds!r}",
        f"--wall-seconds={limits.wall_seconds!r}",
        f"--deadline={deadline!r}",
        f"--output-bytes={limits.output_bytes}",
        f"--answer-bytes={limits.answer_bytes}",
        f"--memory-bytes={limits.memory_bytes}",
        f"--file-bytes={limits.file_bytes}",
        f"--progress={_PROGRESS_FILE}",
    ]
    if "mount-namespace" not in mounts.protections:
        return command

    # The scratch parent contains the working folders of concurrent runs, so it is
    # always masked; the worker mounts its own working folder back in.
    hidden = [*mounts.masks, scratch_parent()]
    unshare = shutil.which("unshare") or "unshare"
    command = [unshare, *_UNSHARE_FLAGS, *command, "--isolate-mounts"]
    command += [f"--mask={path}" for path in hidden]
    if "read-only-filesystem" in mounts.protections:
        command.append("--read-only")
        command += [f"--writable={path}" for path in mounts.writable]
    return command


def _sandbox_env(scratch: Path, extra_env: Mapping[str, str]) -> dict[str, str]:
    env = {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        # The working folder is the only writable one in the sandbox, so HOME, the
        # temporary folder and the caches that libraries keep elsewhere point there.
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "MPLCONFIGDIR": str(scratch / ".config" / "matplotlib"),
        "JUPYTER_RUNTIME_DIR": str(scratch / ".local" / "share" / "jupyter" / "runtime"),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        # The worker and the kernel import the same r2ska as the caller.
        "PYTHONPATH": str(_PACKAGE_PARENT),
        "MPLBACKEND": "Agg",
        # RLIMIT_AS counts reserved address space, and glibc reserves 64 MiB for each
        # malloc arena, up to 8 per core.
        "MALLOC_ARENA_MAX": "2",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    env.update(extra_env)
    return env


def _run_worker(
    command: list[str], scratch: Path, env: dict[str, str], deadline: float
) -> int | None:
    with open(scratch / _WORKER_LOG, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None
    finally:
        # The pid is still unreaped here, so it cannot name another process group yet.
        if process.returncode is None:
            _worker.kill_descendants(process.pid)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def _empty_result(
    status: str, reason: str, names: list[str], isolation: list[str]
) -> SandboxResult:
    return SandboxResult(
        status=status,
        answers={},
        missing=list(names),
        reason=reason,
        errors=[],
        output_truncated=False,
        isolation=isolation,
    )


def _timed_out_result(
    scratch_fd: int, names: list[str], limits: SandboxLimits, isolation: list[str]
) -> SandboxResult:
    progress: dict[str, Any] = {}
    try:
        data = _read_untrusted(scratch_fd, _PROGRESS_FILE, _MAX_PROGRESS_BYTES)
        if data is not None:
            loaded = json.loads(data)
            progress = loaded if isinstance(loaded, dict) else {}
    except (_UntrustedFileError, ValueError):
        pass

    cell = progress.get("cell")
    where = f" in cell {cell}" if type(cell) is int else " before the first cell ran"
    reason = f"Execution timed out after {limits.wall_seconds:g} s{where}."
    result = _empty_result("timeout", reason, names, isolation)
    result.output_truncated = progress.get("output_truncated") is True
    return result


def _worker_result(
    scratch_fd: int, returncode: int, names: list[str], isolation: list[str]
) -> SandboxResult:
    try:
        data = _read_untrusted(scratch_fd, _RESULT_FILE, _MAX_RESULT_BYTES)
        if data is None:
            raise _UntrustedFileError("no result file")
        fields_read = _parse_worker_result(data)
    except _UntrustedFileError as error:
        log_line = _last_line(_read_log_tail(scratch_fd))
        detail = f"; last log line: {log_line}" if log_line else ""
        reason = (
            f"The grading sandbox failed ({error}, worker exit status {returncode}{detail}). "
            "Please report this to the course staff."
        )
        return _empty_result("sandbox-error", reason[:_MAX_REASON_CHARS], names, isolation)

    status, reason, errors, output_truncated = fields_read
    result = _empty_result(status, reason, names, isolation)
    result.errors = errors
    result.output_truncated = output_truncated
    return result


def _parse_worker_result(data: bytes) -> tuple[str, str, list[str], bool]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise _UntrustedFileError("the result file is not valid JSON") from error
    if not isinstance(value, dict):
        raise _UntrustedFileError("the result file is not a JSON object")

    status = value.get("status")
    reason = value.get("reason")
    errors = value.get("errors")
    output_truncated = value.get("output_truncated")
    if status not in STATUSES or not isinstance(reason, str):
        raise _UntrustedFileError(f"the result file has an invalid status {status!r}")
    if not isinstance(errors, list) or not all(isinstance(error, str) for error in errors):
        raise _UntrustedFileError("the result file has an invalid error list")
    if not isinstance(output_truncated, bool):
        raise _UntrustedFileError("the result file has an invalid output_truncated flag")

    errors = [error[:_MAX_ERROR_CHARS] for error in errors[:_MAX_ERRORS]]
    return status, reason[:_MAX_REASON_CHARS], errors, output_truncated


def _add_answers(
    result: SandboxResult, scratch_fd: int, names: list[str], limits: SandboxLimits
) -> None:
    # The wrapper object and the list of missing names come on top of the answers.
    limit = limits.answer_bytes + 64 * 1024 + 16 * sum(len(name) for name in names)
    try:
        data = _read_untrusted(scratch_fd, _ANSWERS_FILE, limit)
        answers = {} if data is None else _parse_answers(data, names)
    except _UntrustedFileError as error:
        answers = {}
        if STATUSES.index("sandbox-error") < STATUSES.index(result.status):
            result.status = "sandbox-error"
            result.reason = f"The grading sandbox could not read the answers: {error}."

    result.answers = answers
    result.missing = [name for name in names if name not in answers]


def _parse_answers(data: bytes, names: list[str]) -> dict[str, object]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise _UntrustedFileError("the answers file is not valid JSON") from error
    answers = value.get("answers") if isinstance(value, dict) else None
    if not isinstance(answers, dict):
        raise _UntrustedFileError("the answers file has no answers object")

    try:
        return {name: _decode_answer(answers[name]) for name in names if name in answers}
    except RecursionError as error:
        raise _UntrustedFileError("the answers are nested too deeply") from error


def _decode_answer(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_answer(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {_worker.ARRAY_KEY, "dtype", "shape"}:
        return _decode_array(value)
    return {key: _decode_answer(item) for key, item in value.items()}


def _decode_array(encoded: dict[str, Any]) -> Any:
    dtype_text, shape = encoded["dtype"], encoded["shape"]
    if not isinstance(dtype_text, str) or not isinstance(shape, list):
        return dict(_INVALID_ARRAY)
    if not all(type(size) is int and size >= 0 for size in shape):
        return dict(_INVALID_ARRAY)
    try:
        dtype = np.dtype(dtype_text)
    except TypeError:
        return dict(_INVALID_ARRAY)
    if dtype.kind not in _worker.ARRAY_DTYPE_KINDS:
        return dict(_INVALID_ARRAY)

    try:
        array = np.array(encoded[_worker.ARRAY_KEY], dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        return dict(_INVALID_ARRAY)
    if array.shape == tuple(shape):
        return array
    # tolist() writes an empty array of shape (0, 3) as [], so only the size can match.
    if array.size == 0 and math.prod(shape) == 0:
        return array.reshape(shape)
    return dict(_INVALID_ARRAY)


def _read_untrusted(dir_fd: int, name: str, limit: int) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _UntrustedFileError(f"{name} could not be opened: {error.strerror}") from error

    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise _UntrustedFileError(f"{name} is not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise _UntrustedFileError(f"{name} is larger than {limit} bytes")
    return data


def _read_log_tail(dir_fd: int) -> bytes:
    try:
        fd = os.open(_WORKER_LOG, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return b""
        file.seek(max(0, info.st_size - _LOG_TAIL_BYTES))
        return file.read(_LOG_TAIL_BYTES)


def _last_line(data: bytes) -> str:
    lines = data.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1].strip()[:_MAX_ERROR_CHARS] if lines else ""


def _remove_scratch(scratch: Path) -> None:
    def make_writable_and_retry(function: Any, path: str, _error: Any) -> None:
        # A cell may have removed write permission from a folder it created.
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        function(path)

    handler = "onexc" if sys.version_info >= (3, 12) else "onerror"
    try:
        shutil.rmtree(scratch, **{handler: make_writable_and_retry})
    except OSError as error:
        warnings.warn(
            f"The sandbox folder {scratch} could not be deleted ({error}); delete it by hand.",
            RuntimeWarning,
            stacklevel=3,
        )
