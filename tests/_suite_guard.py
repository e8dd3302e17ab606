"""What keeps `make test` from hanging or leaking, whatever a test does (tests/conftest.py).

- `leak_check()` runs around every test: a thread or child process the test started and
  that is still alive shortly after it ends fails that test (the child is killed first).
- `RunCap` ends a run that outlives SCANN_TEST_RUN_CAP_SECONDS (default 40 min): it dumps
  every thread's stack, kills the child processes and exits 124, so CI reports a failure
  instead of hitting its own time limit.
- `exit_without_waiting()` ends the process at the very end of the session: a non-daemon
  thread left running (e.g. a client loop whose test failed before stopping it) would
  otherwise keep Python in `threading._shutdown` forever after the summary is printed.

pytest-timeout (`timeout` in pyproject.toml) bounds each test on top of this.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil

#: How long a test's threads and processes get to end after it, before they count as leaked.
SETTLE_SECONDS = 5.0
DEFAULT_RUN_CAP_SECONDS = 40 * 60
#: Threads owned by session-wide machinery that start lazily inside whichever test first
#: needs them (asyncio's default executor of the session loop, gRPC's and the fake
#: servers' worker pools). They end with their owners at session teardown.
SHARED_THREAD_PREFIXES = ("asyncio_", "ThreadPoolExecutor-", "session-", "pydevd")
#: Process-wide singletons started on first use: grpc.aio's completion-queue poller.
SHARED_THREAD_TARGETS = ("(_poll_wrapper)",)


def _shared(thread: threading.Thread) -> bool:
    return thread.name.startswith(SHARED_THREAD_PREFIXES) or thread.name.endswith(
        SHARED_THREAD_TARGETS
    )


def _children() -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return {}


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stack(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame)[-4:])


def _describe_threads(threads: list[threading.Thread]) -> str:
    return "\n".join(f"- {t.name} (daemon={t.daemon}):\n{_stack(t)}" for t in threads)


def kill_children(processes: list[psutil.Process]) -> None:
    """SIGKILL `processes` and reap them."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=10)


@contextmanager
def leak_check() -> Iterator[None]:
    """Fails (after the test body) when the body left a thread or a child process running."""
    threads_before = set(threading.enumerate())
    children_before = set(_children())
    yield
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        threads = [
            t
            for t in threading.enumerate()
            if t not in threads_before and t.is_alive() and not _shared(t)
        ]
        children = [p for pid, p in _children().items() if pid not in children_before]
        children = [p for p in children if _alive(p)]
        if (not threads and not children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if children:
        described = ", ".join(f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in children)
        kill_children(children)
        problems.append(f"child processes still running after the test (killed): {described}")
    if threads:
        problems.append(f"threads still running after the test:\n{_describe_threads(threads)}")
    if problems:
        raise AssertionError(
            "the test leaked what it started; stop it in a fixture teardown or `finally`\n"
            + "\n".join(problems)
        )


class RunCap:
    """A watchdog thread that ends the whole run after `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="session-run-cap", daemon=True)
        self._stream: Any = sys.stderr

    @classmethod
    def from_env(cls) -> RunCap:
        """The cap from SCANN_TEST_RUN_CAP_SECONDS (default 40 minutes)."""
        return cls(float(os.environ.get("SCANN_TEST_RUN_CAP_SECONDS", DEFAULT_RUN_CAP_SECONDS)))

    def start(self, config: object | None = None) -> None:
        """Arms the cap (and faulthandler a minute later, should this thread be starved).

        Its report goes to the stderr pytest had before it captured file descriptor 2, so it
        is seen even when it fires inside a test.
        """
        self._stream = os.fdopen(os.dup(_original_stderr_fd(config)), "w")
        self._thread.start()
        faulthandler.dump_traceback_later(self.seconds + 60, exit=True, file=self._stream)

    def cancel(self) -> None:
        """Disarms it (the run ended in time)."""
        self._done.set()
        faulthandler.cancel_dump_traceback_later()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        self._stream.write(
            f"\n\nscann-serving tests: the run took longer than {self.seconds:.0f}s "
            "(SCANN_TEST_RUN_CAP_SECONDS); stacks of every thread follow\n"
        )
        self._stream.flush()
        faulthandler.dump_traceback(file=self._stream, all_threads=True)
        kill_children(list(_children().values()))
        self._stream.flush()
        os._exit(124)


def _original_stderr_fd(config: object | None) -> int:
    """The descriptor pytest saved before capturing fd 2 (2 itself when nothing captures)."""
    plugins = getattr(config, "pluginmanager", None)
    capman = plugins.getplugin("capturemanager") if plugins is not None else None
    capturing = getattr(capman, "_global_capturing", None)
    saved = getattr(getattr(capturing, "err", None), "targetfd_save", None)
    return saved if isinstance(saved, int) else 2


def exit_without_waiting(exit_status: int) -> None:
    """Ends the process now if a non-daemon thread or a child process would outlive pytest.

    Called after the summary is printed. Left-over children are killed and the run fails.
    """
    lingering = [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
    ]
    children = [p for p in _children().values() if _alive(p)]
    if not lingering and not children:
        return
    if children:
        kill_children(children)
    sys.stdout.flush()
    sys.stderr.write(
        "\nscann-serving tests: the session ended with "
        f"{len(lingering)} non-daemon thread(s) and {len(children)} child process(es) still "
        "running (children killed); exiting without waiting for them:\n"
        f"{_describe_threads(lingering)}\n"
    )
    sys.stderr.flush()
    os._exit(exit_status or 1)


__all__ = ["RunCap", "exit_without_waiting", "kill_children", "leak_check"]
