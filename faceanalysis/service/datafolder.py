"""The data folder: the one place the service keeps what must outlive a request or a process.

    <root>/jobs.sqlite3           the job store (job_store.py; SQLite in WAL mode, so also -wal and -shm beside it)
    <root>/uploads/<job id>/      a job's uploaded files, from its acceptance until it ends
    <root>/tmp/<instance>/        uploads of requests still in progress, and files on their way out
    <root>/instances/<instance>.lock   held (flock) by each running server process for its whole life

Several server processes may share one folder. Each registers as an *instance*: it holds an exclusive
``flock`` on its own lock file, which the kernel releases when the process ends, however it ends (``kill -9``
included). Whether an instance is alive is therefore one non-blocking ``flock`` away, with no PID to be reused
and no clock to trust; that is what lets a process tell a job that is running elsewhere from one whose process
died, and a request's temporary files from ones a crash left behind. Uploads are saved under ``tmp/`` and
renamed into ``uploads/``, so a job's files appear whole or not at all (one file system, an atomic rename).

The folder must be on a local file system: ``flock`` and SQLite's own locking are not reliable over NFS.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from facecore.errors import AnalysisError

log = logging.getLogger(__name__)

STORE_NAME = "jobs.sqlite3"
# Below this much free space the service would only fail later, on an upload or a write to the store.
MIN_FREE_BYTES = 8 * 1024 ** 2
PROBE_BYTES = 64 * 1024
_NEW = ".new-"          # a lock file that is being set up, not yet under its final name


class DataFolderError(AnalysisError):
    """The data folder cannot be used; the message names it and says why."""

    def __init__(self, message: str) -> None:
        super().__init__("data_folder_unusable", message)


def default_data_dir(state_home: str | None = None) -> Path:
    """Under the user's state directory (XDG): ``$XDG_STATE_HOME/faceanalysis``, else
    ``~/.local/state/faceanalysis``. The caller passes ``XDG_STATE_HOME``: only entry points read the
    environment."""
    base = Path(state_home).expanduser() if state_home else Path.home() / ".local" / "state"
    return base / "faceanalysis"


class DataFolder:
    """One process's handle on a data folder: its instance lock, its temporary folder, and the file sweep."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        self.store_path = self.root / STORE_NAME
        self.uploads = self.root / "uploads"
        self.tmp_root = self.root / "tmp"
        self.instances = self.root / "instances"
        self.instance = secrets.token_hex(8)
        self.workroot = self.tmp_root / self.instance
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, root: Path, min_free: int = MIN_FREE_BYTES) -> "DataFolder":
        """Create the folder if needed, check it can be written and has room, and register this process.
        Raises ``DataFolderError`` naming the folder when it cannot be used."""
        folder = cls(root)
        folder._make_folders()
        folder._register()
        try:
            folder._check_free_space(min_free)
            folder.workroot.mkdir(mode=0o700)
        except BaseException:
            folder.close()
            raise
        log.info("data folder %s (instance %s)", folder.root, folder.instance)
        return folder

    # --- set-up -------------------------------------------------------------------------------------------

    def _make_folders(self) -> None:
        # The folder holds uploaded face pictures and the answers about them: this user's alone (0700, and its
        # files 0600). Folders above the root that have to be made get the usual mode.
        for path in (self.root, self.uploads, self.tmp_root, self.instances):
            try:
                if path == self.root:
                    path.parent.mkdir(parents=True, exist_ok=True)
                path.mkdir(mode=0o700, exist_ok=True)
                if path != self.root:
                    path.chmod(0o700)       # made by an earlier version with the default mode
            except OSError as error:
                raise self.error(f"cannot create {path}", error) from None
            if not path.is_dir():
                raise DataFolderError(f"the data folder {self.root} cannot be used: {path} is not a folder")
        if self.root.stat().st_mode & 0o077:
            log.warning("the data folder %s can be read by other users; it holds uploaded pictures: chmod 700 it",
                        self.root)

    def _register(self) -> None:
        # The lock file is made, written to and locked under a temporary name, then renamed into place, so
        # another process never sees this instance's lock file unlocked (and takes it for a dead one). The
        # write doubles as the start-up probe: a read-only folder or a full disk fails it, before any model
        # is loaded.
        temporary = self.instances / f"{_NEW}{self.instance}"
        try:
            fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise self.error("cannot write to it", error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())     # for people reading the folder; never trusted
            os.rename(temporary, self.lock_path(self.instance))
        except OSError as error:
            os.close(fd)
            _unlink(temporary)
            raise self.error("cannot write to it", error) from None
        self._lock_fd = fd

    def _check_free_space(self, min_free: int) -> None:
        free = shutil.disk_usage(self.root).free
        if free < min_free:
            raise DataFolderError(f"the disk holding the data folder {self.root} is full: {free} bytes free, "
                                  f"at least {min_free} needed")

    def error(self, doing: str, error: OSError) -> DataFolderError:
        """A ``DataFolderError`` for an ``OSError``, in words a person can act on."""
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            why = "it is read-only or not writable by this user"
        elif error.errno in (errno.ENOSPC, errno.EDQUOT):
            why = "the disk is full"
        else:
            why = error.strerror or str(error)
        return DataFolderError(f"the data folder {self.root} cannot be used: {doing}: {why}")

    # --- instances ------------------------------------------------------------------------------------------

    def lock_path(self, instance: str) -> Path:
        return self.instances / f"{instance}.lock"

    def alive(self, instance: str | None) -> bool:
        """Whether the server process registered as ``instance`` is still running."""
        if instance is None:
            return False
        if instance == self.instance:
            return self._lock_fd is not None
        return _locked(self.lock_path(instance))

    def other_instances(self) -> list[str]:
        """The other server processes using this folder now."""
        return [path.stem for path in self._entries(self.instances)
                if not path.name.startswith(_NEW) and path.stem != self.instance and _locked(path)]

    # --- files ----------------------------------------------------------------------------------------------

    def new_workdir(self) -> Path:
        """A private folder for one request's uploads; the request removes it, or the job it becomes owns it."""
        return Path(tempfile.mkdtemp(prefix="request-", dir=self.workroot))

    def upload_dir(self, job_id: str) -> Path:
        return self.uploads / job_id

    def orphans(self, live_jobs: set[str]) -> list[Path]:
        """Files no live job or process owns: uploads of jobs that ended or were never accepted, and the
        temporary folders and lock files of processes that died. The caller holds the store's write lock,
        so no job is accepted (its uploads renamed in) while this looks."""
        found = [path for path in self._entries(self.uploads) if path.name not in live_jobs]
        found += [path for path in self._entries(self.tmp_root) if not self.alive(path.name)]
        found += [path for path in self._entries(self.instances) if path.stem != self.instance and not _locked(path)]
        return found

    def discard(self, paths: list[Path]) -> list[Path]:
        """Move ``paths`` out of the way at once (a rename into this process's temporary folder); ``remove``
        deletes them later, outside any lock. A crash in between leaves them in a dead instance's folder,
        which the next sweep removes."""
        moved = []
        for path in paths:
            target = self.workroot / f"discarded-{secrets.token_hex(6)}"
            try:
                path.rename(target)
            except FileNotFoundError:
                continue
            except OSError:
                log.warning("could not move %s aside for removal", path, exc_info=True)
                continue
            moved.append(target)
        return moved

    @staticmethod
    def remove(paths: list[Path]) -> None:
        for path in paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                _unlink(path)

    def close(self) -> None:
        """Remove this process's temporary files and give up its registration (a clean exit)."""
        shutil.rmtree(self.workroot, ignore_errors=True)
        if self._lock_fd is not None:
            _unlink(self.lock_path(self.instance))
            os.close(self._lock_fd)          # releases the flock
            self._lock_fd = None

    @staticmethod
    def _entries(folder: Path) -> list[Path]:
        try:
            return sorted(folder.iterdir())
        except FileNotFoundError:
            return []


def _locked(path: Path) -> bool:
    """Whether some process holds ``path``'s flock. Taking it ourselves and letting go at once is the test."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
