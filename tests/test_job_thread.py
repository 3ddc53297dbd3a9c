"""JobThread: jobs run in order on one named thread; while the interpreter exits, on the caller, after the rest."""

from __future__ import annotations

import concurrent.futures.thread
import threading
import time

import pytest

from emergence.job_thread import JobThread


def test_jobs_run_one_at_a_time_in_order_on_the_named_thread_and_outcomes_come_back():
    thread, seen = JobThread("emergence-test-jobs"), []
    futures = [thread.submit(lambda i=i: seen.append((i, threading.current_thread().name)) or i) for i in range(20)]
    failing = thread.submit(lambda: 1 / 0)
    thread.drain()
    assert [i for i, _ in seen] == list(range(20)) and [f.result() for f in futures] == list(range(20))
    assert all(name.startswith("emergence-test-jobs") for _, name in seen)
    with pytest.raises(ZeroDivisionError):
        failing.result()
    thread.close()
    assert thread.submit(lambda: "again").result() == "again", "a closed JobThread starts a new thread"
    thread.close()


def test_while_the_interpreter_exits_a_job_runs_on_the_caller_after_the_queued_ones(monkeypatch):
    """The flag is the one the interpreter's exit hook sets (`concurrent.futures.thread._shutdown`): from then on
    no executor takes work, and an exit handler's save must still run, after what was queued."""
    thread, order, release = JobThread("emergence-test-jobs"), [], threading.Event()
    thread.submit(lambda: (release.wait(10), time.sleep(0.05), order.append("queued")))
    monkeypatch.setattr(concurrent.futures.thread, "_shutdown", True)
    threading.Timer(0.05, release.set).start()
    here = thread.submit(lambda: order.append(threading.current_thread().name) or "saved")
    assert here.done() and here.result() == "saved"
    assert order == ["queued", threading.current_thread().name]
    monkeypatch.undo()
    thread.close()
