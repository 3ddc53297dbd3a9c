"""WandbCallback and WandbSink in one process, offline: what reaches the run's files, and the one-line errors."""

from __future__ import annotations

import sys

import pytest
import wandb

from emergence import Trainer
from emergence.callbacks import CheckpointCallback, LogThrottleCallback, WandbCallback
from emergence.callbacks.wandb_run import api_key_from_kaggle_secrets, offline_run_dirs, sync_command
from emergence.metrics.wandb_sink import WandbSink
from emergence.testing import FakeClock, toy_task
from emergence.testing.wandb_offline import config, history_rows, read_records, run_ids, summary


def _fit(run_dir, max_steps, said, **trainer_args):
    run = WandbCallback(project="emergence-test", config={"note": "hello"}, say=said.append)
    callbacks = [CheckpointCallback(every_n_steps=4), LogThrottleCallback(every_n_steps=2, sinks=[run.sink]), run]
    Trainer(toy_task(), callbacks, max_steps=max_steps, run_dir=run_dir, **trainer_args).fit()
    wandb.teardown()  # finish() may return before wandb's service closes the run's file; this waits for it
    return run


def test_an_offline_run_logs_every_throttled_row_against_the_trainer_step(offline, tmp_path):
    said: list[str] = []
    run = _fit(tmp_path / "run", 12, said)
    (session,) = offline_run_dirs(tmp_path / "run" / "wandb", run.run_id)
    log = next(session.glob("run-*.wandb"))
    assert run_ids(log) == [run.run_id]
    assert [row["trainer/step"] for row in history_rows(log)] == [2, 4, 6, 8, 10, 12]
    metrics = [r for r in read_records(log) if r.WhichOneof("record_type") == "metric"]
    assert {(m.metric.glob_name, m.metric.step_metric) for m in metrics} >= {("*", "trainer/step")}
    recorded = config(log)
    assert recorded["task"]["hidden"] == [8] and recorded["note"] == "hello"
    assert recorded["trainer"]["checkpoint_dir"] == str(tmp_path / "run" / "checkpoints")
    end = summary(log)
    assert end["checkpoint/latest"].endswith("final_step_12.safetensors") and end["stop_reason"] == "max_steps"
    assert said == [f"wandb: offline run {run.run_id}; to upload it: wandb sync {session}"]


def test_a_resume_reopens_the_run_named_in_the_checkpoint(offline, tmp_path):
    first = _fit(tmp_path / "run", 8, [])
    second = _fit(tmp_path / "run", 12, [])
    assert second.run_id == first.run_id
    sessions = offline_run_dirs(tmp_path / "run" / "wandb", first.run_id)
    assert len(sessions) == 2
    steps = [[row["trainer/step"] for row in history_rows(next(s.glob("run-*.wandb")))] for s in sessions]
    assert steps[0] == [2, 4, 6, 8]
    assert steps[1][-2:] == [10, 12] and set(steps[1][:-2]) <= {2, 4, 6, 8}  # replayed rows, then new ones


def test_without_wandb_installed_asking_for_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"^W&B logging needs the wandb package: pip install 'emergence\[wandb\]'$"):
        WandbCallback()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "cloud"}, "mode must be 'online', 'offline', 'disabled' or None"),
        ({"replay_seconds": -1}, "replay_seconds must be >= 0 seconds"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        WandbCallback(**kwargs)
    assert "\n" not in str(info.value)


def test_a_sink_without_its_callback_says_to_add_it():
    with pytest.raises(RuntimeError, match="put its WandbCallback in the Trainer's callbacks"):
        WandbSink().write(1, {"loss": 1.0})


def test_the_sink_keeps_only_recent_rows_up_to_the_checkpoint_step_for_replay():
    clock = FakeClock()
    sink = WandbSink(replay_seconds=10, clock=clock)
    logged: list[dict] = []
    sink.attach(type("Run", (), {"log": staticmethod(logged.append)})())
    for step in (1, 2, 3):
        sink.write(step, {"loss": float(step)})
        clock.advance(4)  # written at 0, 4 and 8 s; read at 12 s: the first is older than 10 s
    assert sink.recent(up_to_step=2) == [(2, {"loss": 2.0})]
    assert logged[0] == {"trainer/step": 1, "loss": 1.0}


def test_the_sync_line_lists_every_session_of_the_run_in_order(tmp_path):
    for name in (
        "offline-run-20260102_000000-abc-1",
        "offline-run-20260101_000000-abc",
        "offline-run-20260102_000000-abc",
        "offline-run-20260101_000000-other",
    ):
        (tmp_path / name).mkdir()
    assert sync_command(tmp_path, "abc") == (
        f"wandb sync {tmp_path}/offline-run-20260101_000000-abc "
        f"{tmp_path}/offline-run-20260102_000000-abc "
        f"{tmp_path}/offline-run-20260102_000000-abc-1"
    )


def test_the_sync_line_takes_in_the_sessions_of_the_run_dir_resumed_from(tmp_path):
    earlier, now = tmp_path / "input" / "wandb", tmp_path / "working" / "wandb"
    (earlier / "offline-run-20260101_000000-abc").mkdir(parents=True)
    (now / "offline-run-20260103_000000-abc").mkdir(parents=True)
    assert sync_command([now, earlier], "abc") == (
        f"wandb sync {earlier}/offline-run-20260101_000000-abc {now}/offline-run-20260103_000000-abc"
    )


def test_a_resume_from_another_run_dir_continues_the_run_and_syncs_both_sessions(offline, tmp_path):
    earlier = _fit(tmp_path / "input", 8, [])
    said: list[str] = []
    later = _fit(tmp_path / "working", 12, said, resume=tmp_path / "input" / "checkpoints")
    assert later.run_id == earlier.run_id
    sessions = [
        *offline_run_dirs(tmp_path / "input" / "wandb", earlier.run_id),
        *offline_run_dirs(tmp_path / "working" / "wandb", earlier.run_id),
    ]
    assert said == [f"wandb: offline run {earlier.run_id}; to upload it: wandb sync {sessions[0]} {sessions[1]}"]


def test_more_rows_than_the_replay_holds_is_said_once(caplog):
    import logging

    sink = WandbSink(max_replay_rows=2, clock=FakeClock())
    sink.attach(type("Run", (), {"log": staticmethod(lambda row: None)})())
    with caplog.at_level(logging.WARNING, logger="emergence"):
        for step in range(1, 6):
            sink.write(step, {"loss": 1.0})
    assert caplog.text.count("more than 2 rows logged within 60 s") == 1
    assert sink.recent(up_to_step=5) == [(4, {"loss": 1.0}), (5, {"loss": 1.0})]


def _kaggle_secrets(monkeypatch, secrets: dict[str, str]):
    """A stand-in for Kaggle's `kaggle_secrets`: `get_secret` raises for a secret not attached, as Kaggle's does."""
    import types

    class UserSecretsClient:
        def get_secret(self, name):
            if name not in secrets:
                raise RuntimeError(f"Unexpected response from the service: no secret {name}")
            return secrets[name]

    monkeypatch.setitem(sys.modules, "kaggle_secrets", types.SimpleNamespace(UserSecretsClient=UserSecretsClient))


def test_on_kaggle_the_api_key_comes_from_the_notebook_s_secrets(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "")  # unset for the function, restored after the test
    _kaggle_secrets(monkeypatch, {"WANDB_API_KEY": "k" * 40})
    assert api_key_from_kaggle_secrets() is True
    assert __import__("os").environ["WANDB_API_KEY"] == "k" * 40


def test_without_a_key_or_a_secret_w_and_b_is_skipped(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "")  # unset for the function, restored after the test
    monkeypatch.setitem(sys.modules, "kaggle_secrets", None)
    assert api_key_from_kaggle_secrets() is False  # not on Kaggle
    _kaggle_secrets(monkeypatch, {})
    assert api_key_from_kaggle_secrets() is False  # on Kaggle, no secret attached


def test_a_sigterm_finishes_the_run_and_the_resume_continues_it(offline, tmp_path):
    import signal

    from emergence.callbacks import SignalCheckpointCallback
    from emergence.testing import Scenario

    said: list[str] = []

    def callbacks(clock):
        run = WandbCallback(project="emergence-test", say=said.append)
        return [
            CheckpointCallback(every_n_steps=5),
            LogThrottleCallback(every_n_steps=1, sinks=[run.sink]),
            run,
            SignalCheckpointCallback(),
        ]

    stopped = Scenario(max_steps=20, run_dir=tmp_path / "run").signal_at(7, signal.SIGTERM).run(callbacks)
    assert stopped.exit_code == 143 and len(said) == 1
    resumed = stopped.resume(max_steps=12)
    wandb.teardown()
    run_id = stopped.trainer.callbacks[3].run_id
    assert resumed.trainer.callbacks[3].run_id == run_id
    sessions = offline_run_dirs(tmp_path / "run" / "wandb", run_id)
    steps = [[row["trainer/step"] for row in history_rows(next(s.glob("run-*.wandb")))] for s in sessions]
    assert steps[0] == list(range(1, 8))
    assert steps[1][-5:] == list(range(8, 13)) and set(steps[1][:-5]) <= set(range(1, 8))
