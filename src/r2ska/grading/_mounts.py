"""Mount-namespace setup for the grading worker: masks, read-only mounts and locking.

Everything here runs in the worker before the kernel starts, with the capabilities
that root has in the user namespace of ``unshare --user --map-root-user --mount``
or in the nested one that lock_mounts() enters.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from collections.abc import Sequence
from pathlib import Path

SANDBOX_UID = 65534
"""User id that the kernel runs as inside the nested user namespace ("nobody")."""

SANDBOX_GID = 65534
"""Group id that the kernel runs as inside the nested user namespace ("nogroup")."""

# Linux constants from <sched.h> and <sys/mount.h>.
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_NOSYMFOLLOW = 256
_MS_BIND = 4096
_MS_REC = 16384

# Per-mount options of /proc/self/mountinfo that a bind remount must repeat. Linux
# rejects with EPERM a remount that would clear a locked nosuid, nodev or noexec,
# and a remount without nosymfollow clears it. A remount without atime options
# keeps them, so they need no entry.
_KEPT_OPTION_FLAGS = {
    "nosuid": _MS_NOSUID,
    "nodev": _MS_NODEV,
    "noexec": _MS_NOEXEC,
    "nosymfollow": _MS_NOSYMFOLLOW,
}
_ESCAPED_CHARACTER = re.compile(rb"\\([0-7]{3})")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    texts = (source, target, fstype, data)
    encoded = [None if text is None else os.fsencode(text) for text in texts]
    result = _libc.mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), encoded[3])
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mounting over {target} failed: {os.strerror(error)}")


def _is_within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def mask_paths(masks: Sequence[str], workdir: str) -> None:
    """Hide each path behind an empty read-only tmpfs, or /dev/null for a file.

    A mask that contains ``workdir`` (the temporary folder, for example) hides it
    too, so the working folder is bind-mounted back into the mask through a
    descriptor opened before the mask went up.

    Args:
        masks: Absolute paths to hide.
        workdir: Absolute path of the working folder, which must stay visible.

    Raises:
        OSError: A mount failed. The notebook must not run then.
    """
    workdir_fd = os.open(workdir, os.O_PATH | os.O_DIRECTORY)
    hidden: list[str] = []
    try:
        for path in sorted(masks):
            if any(_is_within(path, folder) for folder in hidden):
                continue  # already hidden by a mask on a parent folder
            hidden.append(path)
            if not os.path.isdir(path):
                _mount("/dev/null", path, None, _MS_BIND, None)
            elif not _is_within(workdir, path):
                flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
                _mount("none", path, "tmpfs", flags, "size=4k,mode=0555")
            else:
                _mount("none", path, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k,mode=0755")
                os.makedirs(workdir)
                _mount(f"/proc/self/fd/{workdir_fd}", workdir, None, _MS_BIND, None)
                remount = _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
                _mount(None, path, None, remount, None)
    finally:
        os.close(workdir_fd)
    os.chdir(workdir)


def lock_mounts() -> None:
    """Enter a nested user and mount namespace, so the kernel cannot undo the masks.

    Mounts copied into a mount namespace owned by a less privileged user namespace
    are locked: they can be neither unmounted nor bind-mounted apart from what they
    cover. The kernel then runs as SANDBOX_UID with no capabilities, because
    execve() drops them for a user other than the namespace's root.

    Raises:
        OSError: unshare() or writing the id maps failed.
    """
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
        error = ctypes.get_errno()
        message = f"unshare(CLONE_NEWUSER | CLONE_NEWNS) failed: {os.strerror(error)}"
        threads = len(os.listdir("/proc/self/task"))
        if error == errno.EINVAL and threads > 1:
            # Linux lets only a single-threaded process enter a new user namespace.
            message += (
                f"; the worker has {threads} threads but may have only one, so keep "
                "imports that start threads (numpy) out of r2ska/grading/__init__.py"
            )
        raise OSError(error, message)

    # Each map must be written in one write() call, and setgroups must be denied
    # before an unprivileged process may write gid_map.
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{SANDBOX_UID} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{SANDBOX_GID} {gid} 1")


def make_mounts_read_only(keep_writable: Sequence[str], shm_bytes: int) -> None:
    """Remount every reachable mount read-only, except the given folders.

    Call it after lock_mounts(), as root of the nested user namespace. The kernel
    has no capabilities there, so it cannot remount anything writable again, and a
    user namespace that the kernel creates itself copies these mounts with the
    read-only flag locked.

    /proc, /sys and /dev become read-only too. The kernel's user id maps to the
    grading user, so for a grader that runs as root a writable /proc would let a
    cell change host sysctls such as kernel.core_pattern. Device nodes such as
    /dev/null stay writable, because a read-only mount does not apply to them.
    Mounts that another mount covers keep their flags, because no path reaches them.

    Args:
        keep_writable: Absolute, resolved folders that stay writable, such as the
            working folder. Each is bind-mounted onto itself with its submounts, so
            it becomes a mount of its own. The submounts become read-only.
        shm_bytes: Size of the private tmpfs mounted on /dev/shm, which replaces
            the host's shared one so that runs cannot pass files to each other.

    Raises:
        OSError: A mount or remount failed. The notebook must not run then.
    """
    for folder in keep_writable:
        # MS_REC carries along submounts, such as masks inside the folder, which a
        # plain bind mount would leave behind and so uncover.
        _mount(folder, folder, None, _MS_BIND | _MS_REC, None)
    # The working directory still refers to the mount below a new bind mount.
    os.chdir(os.getcwd())

    for mount_id, mount_point, options in _read_mountinfo():
        if mount_point in keep_writable or "ro" in options:
            continue
        _remount_read_only(mount_id, mount_point, options)

    if os.path.isdir("/dev/shm"):
        flags = _MS_NOSUID | _MS_NODEV
        _mount("tmpfs", "/dev/shm", "tmpfs", flags, f"size={shm_bytes},mode=1777")


def check_read_only(paths: Sequence[str]) -> None:
    """Check that each path lies on a read-only mount.

    Args:
        paths: Files or folders that the notebook must not be able to change.

    Raises:
        OSError: A path is on a writable mount, or statvfs() failed on it.
    """
    for path in paths:
        if not os.statvfs(path).f_flag & os.ST_RDONLY:
            raise OSError(f"{path} is still on a writable mount after the read-only remount")


def _read_mountinfo() -> list[tuple[int, str, set[str]]]:
    mounts: list[tuple[int, str, set[str]]] = []
    with open("/proc/self/mountinfo", "rb") as file:
        for line in file:
            # Fields: mount id, parent id, major:minor, root, mount point, options, ...
            fields = line.split()
            mount_point = _ESCAPED_CHARACTER.sub(lambda match: bytes([int(match[1], 8)]), fields[4])
            options = set(fields[5].decode("ascii").split(","))
            mounts.append((int(fields[0]), os.fsdecode(mount_point), options))
    return mounts


def _remount_read_only(mount_id: int, mount_point: str, options: set[str]) -> None:
    try:
        fd = os.open(mount_point, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return  # a mask or a later mount hides the mount point, so nothing reaches it
    try:
        if _mount_id(fd) != mount_id:
            return  # another mount covers this one, and only that one is reachable

        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        for option, flag in _KEPT_OPTION_FLAGS.items():
            if option in options:
                flags |= flag
        # The descriptor pins the mount that was checked above.
        try:
            _mount(None, f"/proc/self/fd/{fd}", None, flags, None)
        except OSError as error:
            reason = os.strerror(error.errno)
            message = f"remounting {mount_point} read-only failed: {reason}"
            raise OSError(error.errno, message) from error
    finally:
        os.close(fd)


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key == "mnt_id":
                return int(value)
    raise OSError(f"/proc/self/fdinfo/{fd} has no mnt_id field")
