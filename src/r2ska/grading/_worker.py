"""Child process that runs one notebook inside the grading sandbox and exports its answers.

``r2ska.grading.sandbox`` starts it as::

    python -m r2ska.grading._worker NOTEBOOK ANSWERS_OUT RESULT_OUT --names a,b ...

The kernel also imports this module, for ``export_answers``, so everything at module
level must stay cheap and free of side effects.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import errno
import json
import logging
import math
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import zmq
import zmq.asyncio
from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_hook

from r2ska.grading import _mounts

ARRAY_KEY = "__ndarray__"
"""Key of an exported numpy array or torch tensor, next to "dtype" and "shape" keys."""

UNSUPPORTED_KEY = "__unsupported__"
"""Key of an exported value that JSON cannot carry; its value names the type."""

TOO_LARGE_KEY = "__too_large__"
"""Key of an exported value left out because the answers file would exceed its size limit."""

ARRAY_DTYPE_KINDS = "biufU"
"""numpy dtype kinds that the export carries: bool, signed and unsigned int, float, str."""

KERNEL_LOG = "kernel.log"
"""File in the working folder that receives the kernel's own stdout and stderr."""

PROBE_NAMESPACES_FAILED = 1
"""Exit status of ``--probe`` when a namespace check failed."""

PROBE_READ_ONLY_FAILED = 3
"""Exit status of ``--probe`` when the namespaces work but the read-only remount does not."""

_MAX_EXPORT_DEPTH = 100
_MAX_ERRORS = 20
_MAX_ERROR_CHARS = 200
# Bounds on what the worker queues from the kernel. A cell that prints without pause
# then loses messages (zmq drops them, or disconnects a sender of an oversized one)
# instead of filling the worker's memory. The overhead covers the message headers.
_QUEUED_MESSAGES = 16
_MESSAGE_OVERHEAD_BYTES = 2**20
_OUTPUT_MESSAGE_TYPES = frozenset(
    {"stream", "display_data", "execute_result", "error", "update_display_data"}
)
# A kernel that dies with one of these in its stderr ran out of memory, not into a bug.
_MEMORY_MARKERS = (b"MemoryError", b"bad_alloc", b"Cannot allocate memory", b"out of memory")
# torch 2.14 raises a failed CPU allocation as a RuntimeError whose message reads
# "DefaultCPUAllocator: can't allocate memory ... (Cannot allocate memory)".
_MEMORY_ERROR_TEXTS = ("Cannot allocate memory", "can't allocate memory")

# Linux constant from <sys/prctl.h>.
_PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)
_log = logging.getLogger("r2ska.grading.worker")


# Answer export. This part runs inside the student's kernel.


class _ExportTooLargeError(Exception):
    """Raised when a value's estimated JSON size exceeds the bytes left for answers."""


class _ExportBudget:
    """Estimated bytes left for the answers file, charged while a value is encoded."""

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining

    def charge(self, size: int) -> None:
        self.remaining -= size
        if self.remaining < 0:
            raise _ExportTooLargeError


def export_answers(
    namespace: Mapping[str, Any], names: Sequence[str], path: str, max_bytes: int
) -> None:
    """Write the named values of a kernel namespace to a JSON file.

    The worker appends a cell that calls this function with the student's globals.
    It lives in a module so that names the student rebinds (``json``, ``list``,
    ``np``) cannot change how it runs. Numpy arrays and scalars and torch tensors
    become ``{ARRAY_KEY: nested list, "dtype": str, "shape": list}``. Tuples become
    lists. A value JSON cannot carry becomes ``{UNSUPPORTED_KEY: type name}``, and
    one that would push the file past ``max_bytes`` becomes ``{TOO_LARGE_KEY: text}``.

    Args:
        namespace: The kernel's global namespace.
        names: Names of the answers to export.
        path: File to write, as ``{"answers": {name: value}, "missing": [name]}``.
        max_bytes: Maximum total size of the encoded answers, in characters.
    """
    answers: dict[str, Any] = {}
    missing: list[str] = []
    remaining = max_bytes
    for name in names:
        if name not in namespace:
            missing.append(name)
            continue

        text = _encode_answer(namespace[name], remaining)
        if len(text) > remaining:
            text = json.dumps({TOO_LARGE_KEY: f"larger than the {remaining} bytes left"})
        remaining -= len(text)
        answers[name] = json.loads(text)

    with open(path, "w", encoding="utf-8") as file:
        json.dump({"answers": answers, "missing": missing}, file)


def _encode_answer(value: Any, remaining: int) -> str:
    try:
        return json.dumps(_encode_value(value, 0, _ExportBudget(remaining)))
    except _ExportTooLargeError:
        return json.dumps({TOO_LARGE_KEY: f"larger than the {remaining} bytes left"})
    except Exception as error:  # noqa: BLE001 - any student object may raise while encoded
        return json.dumps({UNSUPPORTED_KEY: f"{type(value).__name__} ({type(error).__name__})"})


def _encode_value(value: Any, depth: int, budget: _ExportBudget) -> Any:
    if depth > _MAX_EXPORT_DEPTH:
        return {UNSUPPORTED_KEY: f"nesting deeper than {_MAX_EXPORT_DEPTH} levels"}

    kind = type(value)
    if value is None or kind in (bool, int, float):
        budget.charge(8)
        return value
    if kind is str:
        budget.charge(len(value) + 2)
        return value

    # Only look at numpy and torch when the student imported them, so the export
    # never pays for importing torch.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return _encode_tensor(value, torch, budget)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic)):
        return _encode_array(numpy.asarray(value), budget)

    # Subclasses such as IntEnum or a str subclass become their plain base type.
    for base in (int, float, str):
        if isinstance(value, base):
            return _encode_value(base(value), depth, budget)
    if isinstance(value, (list, tuple)):
        budget.charge(2)
        return [_encode_value(item, depth + 1, budget) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return {UNSUPPORTED_KEY: "dict with keys that are not str"}
        budget.charge(2)
        return {str(key): _encode_value(item, depth + 1, budget) for key, item in value.items()}
    return {UNSUPPORTED_KEY: kind.__name__}


def _encode_tensor(tensor: Any, torch: Any, budget: _ExportBudget) -> Any:
    tensor = tensor.detach().to("cpu")
    if tensor.is_complex():
        return {UNSUPPORTED_KEY: f"Tensor of dtype {tensor.dtype}"}
    if tensor.dtype == torch.bfloat16:
        # numpy has no bfloat16, and float32 represents every bfloat16 value exactly.
        tensor = tensor.to(torch.float32)
    return _encode_array(tensor.numpy(), budget)


def _encode_array(array: Any, budget: _ExportBudget) -> Any:
    if array.dtype.kind not in ARRAY_DTYPE_KINDS:
        return {UNSUPPORTED_KEY: f"ndarray of dtype {array.dtype}"}

    # Every element takes at least a digit and a comma, so a huge array is rejected
    # before tolist() builds it as Python objects.
    budget.charge(2 * array.size)
    return {ARRAY_KEY: array.tolist(), "dtype": str(array.dtype), "shape": list(array.shape)}


def export_cell_source(names: Sequence[str], path: str, max_bytes: int) -> str:
    """Build the code of the cell that exports the answers from the kernel.

    ``import builtins`` reaches the real ``globals`` even when the student rebinds
    that name. The helper names are deleted so the export leaves no trace.

    Args:
        names: Names of the answers, each a Python identifier.
        path: File for ``export_answers`` to write.
        max_bytes: Maximum total size of the encoded answers.

    Returns:
        Python source for one code cell.
    """
    return (
        "import builtins as _r2ska_builtins\n"
        "from r2ska.grading._worker import export_answers as _r2ska_export_answers\n"
        f"_r2ska_export_answers(_r2ska_builtins.globals(), {list(names)!r}, {path!r}, "
        f"{max_bytes!r})\n"
        "del _r2ska_builtins, _r2ska_export_answers\n"
    )


# Process control, shared with the parent in sandbox.py.


def set_resource_limits(memory_bytes: int, file_bytes: int) -> None:
    """Set the address-space, file-size and core-dump limits of this process and its children.

    Hard and soft limits are set together, so the kernel cannot raise them again
    unless it has CAP_SYS_RESOURCE in the initial user namespace.

    Args:
        memory_bytes: RLIMIT_AS, the maximum virtual address space of each process.
        file_bytes: RLIMIT_FSIZE, the maximum size of any file a process writes.
    """
    for limit, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, file_bytes)):
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def become_subreaper() -> None:
    """Make this process adopt orphaned descendants, so daemons started by cells stay findable."""
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(error)}")


def descendants(root_pid: int) -> list[int]:
    """List the live descendants of a process, found through the parent ids in /proc.

    Zombies are left out because they are already dead and cannot be signalled away.

    Args:
        root_pid: The process whose descendants to list (not included).

    Returns:
        Process ids, parents before children.
    """
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # the process exited while /proc was scanned
        # The command name may contain spaces and ")", so fields start after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))

    found: list[int] = []
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        for child in children.get(pid, ()):
            found.append(child)
            pending.append(child)
    return found


def kill_descendants(root_pid: int, attempts: int = 50) -> bool:
    """Send SIGKILL to every descendant of a process until none is left.

    Processes forked while the tree is killed are caught by the next pass, as long
    as ``root_pid`` lives and is their subreaper or ancestor.

    Args:
        root_pid: The process whose descendants to kill (it is not killed).
        attempts: Maximum number of passes, 20 ms apart.

    Returns:
        True when no live descendant is left.
    """
    for _ in range(attempts):
        pids = descendants(root_pid)
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return not descendants(root_pid)


# Isolation probe, run once per process by sandbox.isolation_available().


def probe_isolation(mask: str) -> int:
    """Check inside the namespaces that masks, locks, pid namespace and read-only mounts work.

    Args:
        mask: A folder holding one file, which the probe masks and then may not see.
            It must lie outside the working folder.

    Returns:
        0 when every check passed, PROBE_NAMESPACES_FAILED when a namespace check
        failed and PROBE_READ_ONLY_FAILED when only the read-only remount failed.
        The failure is logged to stderr.
    """
    if not _probe_namespaces(mask):
        return PROBE_NAMESPACES_FAILED
    if not _probe_read_only():
        return PROBE_READ_ONLY_FAILED
    return 0


def _probe_namespaces(mask: str) -> bool:
    try:
        _mounts.mask_paths([mask], os.getcwd())
        _mounts.lock_mounts()
    except OSError as error:
        _log.error("isolation probe: %s", error)
        return False

    if os.listdir(mask):
        _log.error("isolation probe: %s is still visible after masking", mask)
        return False
    if _libc.umount2(os.fsencode(mask), 0) == 0:
        _log.error("isolation probe: the mask on %s could be unmounted", mask)
        return False
    if os.getpid() != 1:
        pid = os.getpid()
        _log.error("isolation probe: the worker is process %d, not 1 of a pid namespace", pid)
        return False
    interfaces = [name for _, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        _log.error("isolation probe: network interfaces %s are visible", interfaces)
        return False
    return True


def _probe_read_only() -> bool:
    workdir = os.getcwd()
    try:
        _mounts.make_mounts_read_only([workdir], 2**20)
        _mounts.check_read_only(_protected_paths())
        Path(workdir, "probe-write.txt").write_text("the working folder stays writable")
    except OSError as error:
        _log.error("isolation probe: %s", error)
        return False

    # The folder that contains the working folder is not kept writable.
    outside = os.path.join(os.path.dirname(workdir), "probe-write.txt")
    try:
        with open(outside, "x"):
            pass
    except OSError as error:
        if error.errno == errno.EROFS:
            return True
        _log.error("isolation probe: writing %s failed with %s, not EROFS", outside, error)
        return False
    _log.error("isolation probe: %s could be written after the read-only remount", outside)
    return False


def _protected_paths() -> list[str]:
    # What later runs execute: the r2ska package and the Python installation.
    package = Path(__file__).resolve().parents[1]
    return ["/", str(package), sys.prefix, sys.base_prefix]


# Notebook execution.


class _SandboxClient(NotebookClient):
    """NotebookClient that caps kept output, ignores widget messages and records cell errors."""

    def __init__(
        self,
        nb: nbformat.NotebookNode,
        output_limit: int,
        progress_path: str | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(nb, **kwargs)
        self.output_limit = output_limit
        self.output_bytes = 0
        self.output_truncated = False
        self.progress_path = progress_path
        self.current_cell = 0
        self.cell_errors: list[tuple[int, str, str]] = []  # (cell index, ename, evalue)
        self.export_error: str | None = None
        self.exporting = False
        self.on_cell_error = self._record_cell_error
        self.disconnect_watch: asyncio.Future[None] | None = None

    def create_kernel_manager(self) -> Any:
        km = super().create_kernel_manager()
        # Unix sockets in the working folder, because loopback is down in the network
        # namespace. The relative path keeps them under the 107-byte socket path limit.
        km.transport = "ipc"
        km.ip = "kernel-ipc"
        return km

    async def async_start_new_kernel_client(self) -> Any:
        # As in NotebookClient, except that the client's sockets get the bounds above.
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.RCVHWM, _QUEUED_MESSAGES)
        context.setsockopt(zmq.MAXMSGSIZE, self.output_limit + _MESSAGE_OVERHEAD_BYTES)
        try:
            self.kc = self.km.client(context=context)
            await ensure_async(self.kc.start_channels())
            await ensure_async(self.kc.wait_for_ready(timeout=self.startup_timeout))
        except Exception:
            await self._async_cleanup_kernel()
            raise
        self.kc.allow_stdin = False
        monitor = self.kc.iopub_channel.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.disconnect_watch = asyncio.ensure_future(self._watch_disconnects(monitor))
        await run_hook(self.on_notebook_start, notebook=self.nb)
        return self.kc

    def process_message(
        self, msg: dict[str, Any], cell: nbformat.NotebookNode, cell_index: int
    ) -> nbformat.NotebookNode | None:
        msg_type = msg["msg_type"]
        if msg_type.startswith("comm"):
            return None  # widget state is not graded, and storing it would bypass the cap
        if msg_type in _OUTPUT_MESSAGE_TYPES:
            size = _content_size(msg["content"])
            if self.output_truncated:
                return None
            if self.output_bytes + size > self.output_limit:
                self.mark_truncated()
                return None
            self.output_bytes += size
        return super().process_message(msg, cell, cell_index)

    async def _watch_disconnects(self, monitor: zmq.asyncio.Socket) -> None:
        # zmq disconnects a kernel that sends a message over MAXMSGSIZE, and that
        # message is an output the worker never receives, so it counts as truncation.
        # A kernel that is exiting also disconnects, hence the check for a live kernel.
        while True:
            await monitor.recv_multipart()
            await asyncio.sleep(0.5)
            if await self.km.is_alive():
                self.mark_truncated()

    def mark_truncated(self) -> None:
        """Set the output_truncated flag and record it for a parent that kills the worker."""
        if not self.output_truncated:
            self.output_truncated = True
            self.write_progress(self.current_cell)

    def write_progress(self, cell_index: int) -> None:
        """Record the running cell and the truncation flag for a parent that kills the worker."""
        self.current_cell = cell_index
        if self.progress_path:
            progress = {"cell": cell_index + 1, "output_truncated": self.output_truncated}
            Path(self.progress_path).write_text(json.dumps(progress))

    def _record_cell_error(
        self, cell: nbformat.NotebookNode, cell_index: int, execute_reply: dict[str, Any]
    ) -> None:
        content = execute_reply.get("content", {})
        ename = str(content.get("ename", "Error"))
        evalue = str(content.get("evalue", ""))
        if self.exporting:
            self.export_error = f"{ename}: {evalue}"[:_MAX_ERROR_CHARS]
        else:
            self.cell_errors.append((cell_index, ename, evalue))


def _content_size(content: dict[str, Any]) -> int:
    size = len(str(content.get("text", ""))) + len(str(content.get("evalue", "")))
    for line in content.get("traceback", ()):
        size += len(str(line))
    for value in content.get("data", {}).values():
        size += len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
    return size


def read_notebook(path: str) -> tuple[nbformat.NotebookNode | None, str]:
    """Parse a notebook, checking only the structure that execution relies on.

    Full schema validation is skipped on purpose. Jupyter opens notebooks with small
    schema errors, and a student should not lose marks for one.

    Args:
        path: The notebook file.

    Returns:
        The notebook and an empty string, or None and a sentence saying why the
        file is not a usable notebook.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        detail = f"{error.reason} at byte {error.start}"
        return None, f"The notebook file is not valid UTF-8 text ({detail})."
    try:
        nb = nbformat.reads(text, as_version=4, capture_validation_error={})
    except Exception as error:  # noqa: BLE001 - nbformat raises many types on malformed input
        return None, f"The file is not a valid Jupyter notebook: {_shorten(str(error))}"

    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        return None, "The file is not a valid Jupyter notebook: it has no list of cells."
    for index, cell in enumerate(cells):
        if not isinstance(cell.get("source"), str) or not isinstance(cell.get("cell_type"), str):
            return None, f"The file is not a valid Jupyter notebook: cell {index + 1} is malformed."
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = nbformat.NotebookNode()
    return nb, ""


def _shorten(text: str) -> str:
    first_line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return first_line[:_MAX_ERROR_CHARS]


def _format_bytes(size: int) -> str:
    return f"{size / 2**30:g} GiB" if size >= 2**30 else f"{size / 2**20:g} MiB"


def _exit_description(returncode: int | None) -> str:
    if returncode is None:
        return "exit status unknown"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _kernel_log_mentions_memory() -> bool:
    try:
        with open(KERNEL_LOG, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - 65536))
            tail = log.read()
    except OSError:
        return False
    return any(marker in tail for marker in _MEMORY_MARKERS)


class _NotebookRun:
    """One execution of a notebook: cells in order under the limits, then the answer export."""

    def __init__(self, nb: nbformat.NotebookNode, args: argparse.Namespace) -> None:
        self.nb = nb
        self.args = args
        # Time kept back from the cells for the interrupt, the export and the kernel
        # shutdown, so the worker can report before the parent kills it.
        self.reserve = min(30.0, max(3.0, 0.1 * args.wall_seconds), args.wall_seconds / 2)
        self.deadline = args.deadline - self.reserve
        self.client = _SandboxClient(
            nb,
            output_limit=args.output_bytes,
            progress_path=args.progress,
            kernel_name="python3",
            allow_errors=True,
            shutdown_kernel="immediate",
            startup_timeout=max(1, math.floor(self.deadline - time.monotonic())),
            record_timing=False,
        )
        self.timed_out_cell: int | None = None
        self.timeout_was_wall = False
        self.died_cell: int | None = None
        self.kernel_returncode: int | None = None
        self.kernel_process: Any = None
        self.notes: list[str] = []

    async def execute(self) -> dict[str, Any]:
        """Start the kernel, run the cells and export the answers.

        Returns:
            The result for RESULT_OUT: status, reason, errors and output_truncated.
        """
        started_kernel = False
        with open(KERNEL_LOG, "wb") as kernel_log:
            try:
                async with self.client.async_setup_kernel(
                    cwd=os.getcwd(), stdout=kernel_log, stderr=kernel_log
                ):
                    started_kernel = True
                    self.kernel_process = getattr(self.client.km.provisioner, "process", None)
                    try:
                        await self._run_cells()
                        await self._export_if_alive()
                    finally:
                        # The kernel's shutdown disconnects too, which is no truncation.
                        if self.client.disconnect_watch is not None:
                            self.client.disconnect_watch.cancel()
            except (RuntimeError, TimeoutError, OSError) as error:
                if started_kernel:
                    raise
                _log.error("the kernel failed to start: %s", error)
                reason = f"The Python kernel failed to start: {_shorten(str(error))}"
                return _result("sandbox-error", reason)
        return self._result()

    async def _run_cells(self) -> None:
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue

            # nbclient takes whole seconds, so less than one second left counts as none.
            remaining = self.deadline - time.monotonic()
            if remaining < 1:
                self.timed_out_cell, self.timeout_was_wall = index, True
                return
            self.timeout_was_wall = remaining < self.args.cell_timeout
            self.client.timeout = max(1, math.floor(min(self.args.cell_timeout, remaining)))
            self.client.write_progress(index)

            tasks_before = asyncio.all_tasks()
            try:
                await self.client.async_execute_cell(cell, index)
            except CellTimeoutError:
                self.timed_out_cell = index
                await self._stop_timed_out_cell(tasks_before)
                return
            except DeadKernelError:
                self.died_cell = index
                if self.kernel_process is not None:
                    self.kernel_returncode = self.kernel_process.poll()
                return

    async def _stop_timed_out_cell(self, tasks_before: set[asyncio.Task[Any]]) -> None:
        # nbclient leaves the cell's output poller running after a timeout, and it
        # would swallow the export cell's messages.
        for task in asyncio.all_tasks() - tasks_before - {asyncio.current_task()}:
            task.cancel()
        # SIGINT raises KeyboardInterrupt in the cell, so the kernel can still export.
        await self.client.km.interrupt_kernel()

    async def _export_if_alive(self) -> None:
        if self.died_cell is not None:
            return
        if not await self.client.km.is_alive():
            self.died_cell = len(self.nb.cells) - 1
            return

        # An absolute path, because a cell may have changed the kernel's directory.
        answers_path = os.path.abspath(self.args.answers)
        cell = nbformat.v4.new_code_cell(
            export_cell_source(self.args.names, answers_path, self.args.answer_bytes)
        )
        self.nb.cells.append(cell)
        # Most of the reserve: after an output flood the kernel's queued messages must
        # drain before the export's reply arrives, which took several seconds on 2 cores.
        self.client.timeout = max(1, math.floor(self.reserve * 0.75))
        self.client.exporting = True
        try:
            await self.client.async_execute_cell(cell, len(self.nb.cells) - 1, store_history=False)
        except CellTimeoutError:
            self.notes.append(f"Answer export: timed out after {self.client.timeout} s")
        except DeadKernelError:
            self.notes.append("Answer export: the kernel died")
        if self.client.export_error:
            self.notes.append(f"Answer export: {self.client.export_error}")

    def _result(self) -> dict[str, Any]:
        args, client = self.args, self.client
        memory = _format_bytes(args.memory_bytes)
        memory_cells = [
            index for index, ename, evalue in client.cell_errors if _is_memory_error(ename, evalue)
        ]

        if self.timed_out_cell is not None:
            cell = self.timed_out_cell + 1
            if self.timeout_was_wall:
                reason = f"Execution timed out after {args.wall_seconds:g} s in cell {cell}."
            else:
                limit = f"{args.cell_timeout:g} s"
                reason = f"Cell {cell} timed out after {limit} (the per-cell limit)."
            status = "timeout"
        elif memory_cells:
            status = "memory"
            reason = f"Cell {memory_cells[0] + 1} ran out of memory (the limit is {memory})."
        elif self.died_cell is not None:
            cell = self.died_cell + 1
            exit_text = _exit_description(self.kernel_returncode)
            if _kernel_log_mentions_memory():
                status = "memory"
                reason = (
                    f"The kernel ran out of memory in cell {cell} "
                    f"(the limit is {memory}, {exit_text})."
                )
            else:
                status = "kernel-died"
                reason = (
                    f"The kernel died in cell {cell} ({exit_text}), so no answers were exported; "
                    f"a cell that allocates more than {memory} can cause this."
                )
        else:
            status = "ok"
            reason = _ok_reason(client.cell_errors)

        errors = [_format_error(*error) for error in client.cell_errors[:_MAX_ERRORS]]
        if len(client.cell_errors) > _MAX_ERRORS:
            errors.append(f"... and {len(client.cell_errors) - _MAX_ERRORS} more errors")
        return _result(status, reason, errors + self.notes, client.output_truncated)


def _is_memory_error(ename: str, evalue: str) -> bool:
    return ename.endswith("MemoryError") or any(text in evalue for text in _MEMORY_ERROR_TEXTS)


def _ok_reason(cell_errors: list[tuple[int, str, str]]) -> str:
    if not cell_errors:
        return "All cells ran without errors."
    first_cell = cell_errors[0][0] + 1
    return f"All cells ran; {len(cell_errors)} raised an error, the first in cell {first_cell}."


def _format_error(cell_index: int, ename: str, evalue: str) -> str:
    text = f"cell {cell_index + 1}: {ename}"
    if evalue:
        text = f"{text}: {evalue}"
    return text[:_MAX_ERROR_CHARS]


def _result(
    status: str, reason: str, errors: list[str] | None = None, output_truncated: bool = False
) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "errors": errors or [],
        "output_truncated": output_truncated,
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.isolate_mounts:
        workdir = os.getcwd()
        _mounts.mask_paths(args.mask, workdir)
        _mounts.lock_mounts()
        if args.read_only:
            # Files in the private /dev/shm take memory, so its size is the memory limit.
            _mounts.make_mounts_read_only([workdir, *args.writable], args.memory_bytes)
            _mounts.check_read_only(_protected_paths())

    nb, problem = read_notebook(args.notebook)
    if nb is None:
        return _result("invalid-notebook", problem)
    return asyncio.run(_NotebookRun(nb, args).execute())


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m r2ska.grading._worker",
        description="Run one notebook inside the grading sandbox and export its answers.",
    )

    parser.add_argument("notebook", nargs="?", help="notebook file to execute")
    parser.add_argument("answers", nargs="?", help="JSON file that receives the answers")
    parser.add_argument("result", nargs="?", help="JSON file that receives the run's status")

    parser.add_argument("--names", default="", help="comma-separated answer names to export")
    parser.add_argument("--cell-timeout", type=float, default=600.0, help="seconds per cell")
    parser.add_argument(
        "--wall-seconds", type=float, default=900.0, help="seconds for the whole run, for messages"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        help="time.monotonic() value at which the parent kills the worker; Linux's "
        "CLOCK_MONOTONIC is shared by all processes (default: now + --wall-seconds)",
    )
    parser.add_argument(
        "--output-bytes", type=int, default=1_000_000, help="output characters kept"
    )
    parser.add_argument(
        "--answer-bytes", type=int, default=5_000_000, help="maximum size of the answers JSON"
    )
    parser.add_argument("--memory-bytes", type=int, default=8 * 2**30, help="RLIMIT_AS in bytes")
    parser.add_argument("--file-bytes", type=int, default=2**30, help="RLIMIT_FSIZE in bytes")
    parser.add_argument(
        "--progress",
        help="JSON file that receives the running cell's number and the truncation flag",
    )

    parser.add_argument(
        "--mask", action="append", default=[], help="absolute path to hide (repeatable)"
    )
    parser.add_argument(
        "--isolate-mounts",
        action="store_true",
        help="mask the --mask paths and lock them; needs a fresh user and mount namespace",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="after --isolate-mounts, remount everything read-only except the working "
        "folder, the --writable folders and a private /dev/shm",
    )
    parser.add_argument(
        "--writable",
        action="append",
        default=[],
        help="absolute folder that stays writable with --read-only (repeatable)",
    )
    parser.add_argument(
        "--probe", action="store_true", help="only check that namespace isolation works"
    )

    args = parser.parse_args(argv)
    if not args.probe and args.result is None:
        parser.error("NOTEBOOK, ANSWERS and RESULT are required unless --probe is given")
    args.names = [name for name in args.names.split(",") if name]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker; the outcome goes to RESULT_OUT, never to the exit status.

    Args:
        argv: Command-line arguments without the program name; sys.argv when None.

    Returns:
        The process exit status: 0 once a result was written, 2 for bad arguments,
        and the probe's status with ``--probe``.
    """
    args = _parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    if args.probe:
        return probe_isolation(args.mask[0])

    if args.deadline is None:
        args.deadline = time.monotonic() + args.wall_seconds
    result = _result("sandbox-error", "The grading worker stopped before writing a result.")
    try:
        set_resource_limits(args.memory_bytes, args.file_bytes)
        become_subreaper()
        result = _run(args)
    except Exception as error:  # noqa: BLE001 - the parent needs a result whatever failed
        _log.exception("the worker failed")
        reason = f"The grading worker failed: {type(error).__name__}: {_shorten(str(error))}"
        result = _result("sandbox-error", reason)
    finally:
        kill_descendants(os.getpid())
        Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
