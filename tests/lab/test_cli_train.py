"""`emergence train` keeps its promises: nested flags and presets, one-line usage errors with exit 2,
a real run that saves and summarises, 143 / 130 after an emergency save, a refused structural change
on resume; and (slow) `--preset quick` beats a random policy and survives SIGKILL bitwise."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from emergence.checkpoint import list_checkpoints, read_checkpoint
from emergence.cli import main
from emergence.lab.agents import PPOTask
from emergence.lab.cli.train import parse_config
from emergence.lab.run import callbacks
from emergence.metrics import read_metrics_csv
from tests.helpers import TINY_LAB, ckpt_diff, emergence, finish, newest_periodic_step

TINY = [*TINY_LAB, "--train.log-interval", "16", "--train.track-interval", "16"]
"""Flags of a run that compiles in seconds: 8 env steps per update."""


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("emergence train: error:"), err
    return err


def test_help_shows_every_nested_group_with_its_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--preset",
        "--platform",
        "--train.run-dir",
        "--train.total-steps",
        "--train.save-interval",
        "--train.resume-from",
        "--train.num-envs",
        "--env.num-food",
        "--ppo.lr",
        "--evolution.diversity-bonus",
    ):
        assert flag in text, flag
    assert "food items" in text and "128000" in text  # field docs and the preset's defaults


def test_preset_sets_defaults_and_flags_override_single_fields():
    kaggle = parse_config(["--preset", "kaggle", "--env.num-food", "7", "--evolution.diversity-bonus", "0.5"])
    assert (kaggle.train.total_steps, kaggle.train.num_envs, kaggle.train.save_interval) == (10_000_000, 32, 100_000)
    assert kaggle.env.num_food == 7 and kaggle.env.starting_energy == 200
    assert kaggle.ppo_config().diversity_bonus == 0.5 and kaggle.ppo_config().num_envs == 32
    quick = parse_config(["--train.resume-from", "none", "--train.num-envs", "4"])
    assert quick.preset == "quick" and quick.train.resume_from == "none" and quick.ppo_config().num_envs == 4


def test_flag_intervals_in_env_steps_become_update_intervals_on_the_platform_preset():
    config = parse_config([*TINY, "--train.save-interval", "20", "--train.max-duration", "30"])
    built = {type(cb).__name__: cb for cb in callbacks(config, "local", PPOTask(config.ppo_config()))}
    assert built["CheckpointCallback"].every_n_steps == 3  # 20 env steps = 2.5 updates of 8, rounded up
    assert built["CheckpointCallback"].monitor == "eval/food_per_agent_step"
    assert (built["TimeBudgetCallback"].max_duration, built["TimeBudgetCallback"].margin) == (30, 3)
    assert "TrackerCallback" in built
    assert "SignalCheckpointCallback" in built  # where in the list does not matter: tests/callbacks/test_order.py
    on_kaggle = {type(cb).__name__: cb for cb in callbacks(config, "kaggle", PPOTask(config.ppo_config()))}
    assert (on_kaggle["KaggleTimeoutCallback"].max_duration, on_kaggle["KaggleTimeoutCallback"].margin) == (30, 3)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--preset", "huge"], "unknown preset 'huge'; use one of quick, kaggle"),
        (["--train.total-steps", "many"], "--train.total-steps"),
        (["--train.no-such-flag", "1"], "--train.no-such-flag"),
        (["--platform", "mars"], "mars"),
        (["--train.total-steps", "0"], "--train.total-steps must be at least 1"),
        (["--train.num-envs", "3"], "multiple of num_minibatches"),
        (["--env.num-food", "-1"], "num_food must be >= 0"),
        (["--train.max-duration", "-5"], "--train.max-duration must be positive"),
        (["--train.devices", "two"], "--train.devices must be 'one', 'all' or a positive count, got 'two'"),
        (["--train.total-steps", "nan"], "--train.total-steps: invalid literal for int() with base 10: 'nan'"),
        (["--train.total-steps", "1e9"], "--train.total-steps: invalid literal for int() with base 10: '1e9'"),
        (["--env.grid-size", "0"], "grid_size=0 must be at least 2"),
        (["--train.resume-from"], "--train.resume-from needs a value"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(capsys, argv, says):
    assert says in one_line_error(capsys, ["train", *argv])


def test_missing_resume_checkpoint_is_one_line_and_exit_2(capsys, tmp_path):
    err = one_line_error(
        capsys,
        ["train", *TINY, "--train.run-dir", str(tmp_path / "run"), "--train.resume-from", str(tmp_path / "nowhere")],
    )
    assert "nowhere" in err


def test_more_devices_than_there_are_is_one_line_and_exit_2(capsys, tmp_path):
    err = one_line_error(capsys, ["train", *TINY, "--train.run-dir", str(tmp_path / "run"), "--train.devices", "64"])
    assert "devices=64 but this process has 1 cpu device(s)" in err and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow  # 17 s of lab training on 8 devices; CI's slow stage runs it
def test_all_devices_split_the_worlds_and_the_checkpoint_resumes_on_one(tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = finish(
        emergence(
            "train",
            *TINY,
            "--train.run-dir",
            str(run_dir),
            "--train.total-steps",
            "16",
            "--train.devices",
            "all",
            devices=2,
        )
    )
    assert code == 0, err[-2000:]
    code, out, err = finish(emergence("train", *TINY, "--train.run-dir", str(run_dir), "--train.total-steps", "32"))
    assert code == 0 and "resum" in (out + err).lower(), err[-2000:]
    assert read_checkpoint(run_dir / "checkpoints" / "final_step_4.safetensors").manifest["step"] == 4


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, str]:
    """A finished tiny run: 6 updates, a save every 2, evaluation every 3."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    code, out, err = finish(
        emergence(
            "train",
            *TINY,
            "--train.run-dir",
            str(run_dir),
            "--train.total-steps",
            "48",
            "--train.save-interval",
            "16",
            "--train.eval-interval",
            "24",
        )
    )
    assert code == 0, err[-2000:]
    return run_dir, out


def test_a_run_saves_logs_and_prints_a_summary(tiny_run):
    run_dir, out = tiny_run
    kinds = {(ref.kind, ref.step) for ref in list_checkpoints(run_dir / "checkpoints")}
    assert {("periodic", 2), ("periodic", 4), ("final", 6)} <= kinds and any(kind == "best" for kind, _ in kinds)
    final = read_checkpoint(run_dir / "checkpoints" / "final_step_6.safetensors")
    assert final.manifest["config"]["env"]["num_food"] == 5 and "params" in " ".join(final.arrays)
    assert any("TrackerCallback" in key for key in final.manifest["callbacks"])
    header, rows = read_metrics_csv(run_dir / "metrics.csv")
    assert {"2", "4", "6"} <= {row["step"] for row in rows} and rows[-1]["step"] == "6"
    assert {"env/food_per_agent_step", "eval/food_per_agent_step"} <= set(header)
    assert "stopped: max_steps at update 6 (48 env steps)" in out and "env steps/s" in out and "last eval:" in out


def test_resume_none_in_a_used_run_dir_is_one_line_and_loses_no_row(tiny_run, capsys):
    """Issue 19, item 3: resume-from none truncated metrics.csv and the next auto resume continued the old run."""
    run_dir, _ = tiny_run
    rows = (run_dir / "metrics.csv").read_bytes()
    err = one_line_error(capsys, ["train", *TINY, "--train.run-dir", str(run_dir), "--train.resume-from", "none"])
    assert "already holds" in err and "--train.overwrite" in err and "pass a new run dir" in err
    assert (run_dir / "metrics.csv").read_bytes() == rows


@pytest.mark.slow  # 7 s; CI's slow stage runs it
def test_structural_change_on_resume_is_refused_and_leaves_the_run_untouched(tiny_run):
    run_dir, _ = tiny_run
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (run_dir / "checkpoints").iterdir())
    code, _, err = finish(
        emergence("train", *TINY, "--train.run-dir", str(run_dir), "--train.total-steps", "96", "--env.max-agents", "7")
    )
    error = err.strip().splitlines()[-1]  # after the Trainer's log of what changed
    assert code == 2 and error.startswith("emergence train: error: cannot resume"), err
    assert "env.max_agents: 6 -> 7" in error and "--train.force-resume" in error
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (run_dir / "checkpoints").iterdir()) == before


@pytest.mark.slow  # 16 s of lab subprocesses; CI's slow stage runs it
def test_sigterm_and_sigint_save_an_emergency_checkpoint_and_exit_143_and_130(tmp_path):
    runs = {signum: tmp_path / signum.name for signum in (signal.SIGTERM, signal.SIGINT)}
    processes = {
        signum: emergence(
            "train",
            *TINY,
            "--train.run-dir",
            str(run_dir),
            "--train.total-steps",
            "800000",
            "--train.save-interval",
            "8",
            "--train.eval-interval",
            "0",
            "--train.track-interval",
            "0",
        )
        for signum, run_dir in runs.items()
    }
    deadline = time.monotonic() + 180
    for signum, process in processes.items():  # both train at once; each is signalled once it has saved
        while newest_periodic_step(runs[signum]) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()[-2000:]
            time.sleep(0.1)
        process.send_signal(signum)
    for signum, process in processes.items():
        returncode, _, err = finish(process, timeout=120)
        assert returncode == 128 + signum, err[-2000:]
        emergency = [ref for ref in list_checkpoints(runs[signum] / "checkpoints") if ref.kind == "emergency"]
        assert len(emergency) == 1 and read_checkpoint(emergency[0].path).manifest["reason"] == f"signal:{signum.name}"


QUICK_DIFF_STEPS = "25600"
"""Env steps of the quick runs compared across a SIGKILL (100 updates: 10 periodic saves)."""


@pytest.mark.slow
def test_quick_preset_beats_a_random_policy_on_food_per_agent_step(tmp_path):
    run_dir = tmp_path / "quick"
    began = time.perf_counter()
    code, out, err = finish(
        emergence("train", "--preset", "quick", "--platform", "local", "--train.run-dir", str(run_dir), optimize=True),
        timeout=900,
    )
    wall = time.perf_counter() - began
    assert code == 0, err[-2000:]
    code, report, err = finish(
        emergence(
            "eval", str(run_dir / "checkpoints" / "final_step_500.safetensors"), "--json", "--seed", "1", optimize=True
        )
    )
    assert code == 0, err[-2000:]
    result = json.loads(report)
    print(
        f"\nquick preset: {wall:.0f} s wall; {out.splitlines()[-3:]}\n"
        f"greedy {result['greedy']['food_per_agent_step']:.4f} vs random {result['random']['food_per_agent_step']:.4f}"
        f" food/agent/step (x{result['food_ratio']:.1f})"
    )
    assert result["food_ratio"] > 3.0


@pytest.mark.slow
def test_quick_run_killed_with_sigkill_and_resumed_ends_bitwise_equal(tmp_path):
    flags = [
        "--preset",
        "quick",
        "--platform",
        "local",
        "--train.total-steps",
        QUICK_DIFF_STEPS,
        "--train.save-interval",
        "2560",
    ]
    straight = emergence("train", *flags, "--train.run-dir", str(tmp_path / "straight"), optimize=True)
    assert finish(straight, timeout=600)[0] == 0
    killed_dir = tmp_path / "killed"
    killed = emergence("train", *flags, "--train.run-dir", str(killed_dir), optimize=True)
    deadline = time.monotonic() + 300
    while newest_periodic_step(killed_dir) < 40:
        assert killed.poll() is None and time.monotonic() < deadline, killed.stderr.read()[-2000:]
        time.sleep(0.1)
    killed.kill()
    assert killed.wait() == -signal.SIGKILL
    code, out, err = finish(emergence("train", *flags, "--train.run-dir", str(killed_dir), optimize=True), timeout=600)
    assert code == 0 and "stopped: max_steps at update 100" in out, err[-2000:]
    diff = ckpt_diff(
        tmp_path / "straight" / "checkpoints" / "final_step_100.safetensors",
        killed_dir / "checkpoints" / "final_step_100.safetensors",
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr
