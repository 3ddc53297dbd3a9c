"""Promise 2 in a notebook: Jupyter's "interrupt kernel" leaves a durable emergency checkpoint, and the kernel lives on.

A real IPython kernel (jupyter_client) runs a training cell; the test interrupts it the
way the Jupyter UI does (`interrupt_kernel`, a SIGINT to the kernel), then checks that
`fit()` returned instead of raising, that the checkpoint is on disk and verifies, that
the kernel's own SIGINT handling is back, and that the next `fit()` in the same kernel
resumes from the emergency checkpoint to the same bits as an uninterrupted run.
"""

from __future__ import annotations

import os
import re

import pytest

from emergence.checkpoint import read_checkpoint
from tests.scripts.driver import COMPILE_CACHE, REPO
from tests.scripts.reference import assert_holds, record_states

jupyter_client = pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

SETUP = """
import signal
from emergence import Callback, Trainer
from emergence.callbacks import CheckpointCallback, SignalCheckpointCallback
from tests.scripts.train_subprocess import ScriptTask

class Announce(Callback):
    def on_train_call_end(self, trainer, metrics):
        if trainer.step == 30:
            print("training", flush=True)

kernel_handler = signal.getsignal(signal.SIGINT)

def make(max_steps):
    callbacks = [Announce(), CheckpointCallback(every_n_steps=100_000), SignalCheckpointCallback()]
    return Trainer(ScriptTask((8,)), callbacks, max_steps=max_steps, run_dir={run_dir!r})
"""


def run_cell(km, kc, code, interrupt_on=None, timeout=90):
    """Execute `code`; interrupt the kernel once `interrupt_on` is printed. Returns (reply status, output)."""
    msg_id = kc.execute(code)
    output, interrupted = [], False
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            output.append(content["text"])
            if interrupt_on and not interrupted and interrupt_on in content["text"]:
                km.interrupt_kernel()
                interrupted = True
        elif kind == "error":
            output.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    return reply["content"]["status"], "".join(output)


@pytest.fixture
def kernel():
    env = {**COMPILE_CACHE, **os.environ, "PYTHONPATH": str(REPO)}
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=str(REPO), env=env)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_interrupt_kernel_saves_returns_cleanly_and_the_next_fit_resumes_from_it(kernel, tmp_path):
    km, kc = kernel
    run_dir = tmp_path / "run"
    assert run_cell(km, kc, SETUP.format(run_dir=str(run_dir)))[0] == "ok"

    status, output = run_cell(
        km, kc, "t = make(10**7)\nt.fit()\nprint('returned', t.stop_reason, t.step)", interrupt_on="training"
    )
    assert status == "ok", output  # fit() returned: no KeyboardInterrupt reached the cell
    step = int(re.search(r"returned signal:SIGINT (\d+)", output).group(1))
    assert "stopped by signal:SIGINT: fit() returns, exit code 130" in output
    emergency = run_dir / "checkpoints" / f"emergency_step_{step}.safetensors"
    assert read_checkpoint(emergency).manifest["reason"] == "signal:SIGINT"

    status, output = run_cell(km, kc, "print(signal.getsignal(signal.SIGINT) is kernel_handler)")
    assert output.strip() == "True"

    status, output = run_cell(
        km, kc, f"t2 = make({step + 4})\nt2.fit()\nprint('resumed', t2.resumed_from.path.name, t2.fit_start_step)"
    )
    assert status == "ok" and f"resumed emergency_step_{step}.safetensors {step}" in output, output
    reference = record_states(tmp_path / "straight", step + 4)
    assert_holds(reference[step], emergency)
    assert_holds(reference[step + 4], run_dir / "checkpoints" / f"final_step_{step + 4}.safetensors")

    status, output = run_cell(
        km, kc, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", interrupt_on="sleeping"
    )
    assert status == "error" and "KeyboardInterrupt" in output  # the kernel's own interrupt works again
