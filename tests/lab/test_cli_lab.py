"""`emergence eval` and `emergence render` on real checkpoints: greedy vs random on the same worlds,
GIF frames and PNG sheets read back with PIL, and a one-line exit-2 error for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.cli import main
from emergence.lab.agents import PPOTask, episode_metrics
from emergence.lab.cli.episodes import contact_sheet, play
from emergence.testing import toy_task
from tests.helpers import quick_compiles, tiny_ppo_config  # noqa: F401  (quick_compiles: a fixture, below)

pytestmark = pytest.mark.usefixtures("quick_compiles")  # XLA without most optimisations in this module


TINY = tiny_ppo_config()


class Untrained(PPOTask):
    """The lab task whose updates change nothing: its checkpoints are real, and cost no PPO compile."""

    def train_step(self, state):
        return state, {}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A lab run's directory holding its final checkpoint, at update 2."""
    run_dir = tmp_path_factory.mktemp("lab") / "run"
    Trainer(
        Untrained(TINY), [CheckpointCallback()], max_steps=2, run_dir=run_dir, resume=None, async_checkpoint=False
    ).fit()
    return run_dir


# Every command below plays 1 world for 6 steps, so each policy's episode program compiles once.


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow  # 9 s; CI's slow stage runs it
def test_eval_reports_greedy_and_random_on_the_same_worlds(capsys, run_dir):
    code, out, _ = run(capsys, "eval", str(run_dir), "--json", "--envs", "1", "--steps", "6", "--seed", "4")
    result = json.loads(out)
    assert code == 0 and result["step"] == 2 and (result["envs"], result["steps"]) == (1, 6)
    random = jax.device_get(episode_metrics(play(jax.random.key(4), TINY, None, None, "random", 1, 6)))
    assert result["random"]["food_per_agent_step"] == pytest.approx(float(random["eval/food_per_agent_step"]))
    assert result["random"] != result["greedy"]
    assert result["food_ratio"] == pytest.approx(
        result["greedy"]["food_per_agent_step"] / result["random"]["food_per_agent_step"]
    )
    assert set(result["greedy"]) == {"food_per_agent_step", "mean_return", "population", "lifespan"}


def test_eval_prints_a_table_with_the_ratio(capsys, run_dir):
    code, out, _ = run(
        capsys, "eval", str(run_dir / "checkpoints" / "final_step_2.safetensors"), "--envs", "1", "--steps", "6"
    )
    assert code == 0 and "greedy" in out and "random" in out and "the random policy's" in out


def test_render_writes_a_gif_with_one_frame_per_step(capsys, run_dir, tmp_path):
    code, out, _ = run(
        capsys, "render", str(run_dir), "--out", str(tmp_path / "world.gif"), "--steps", "6", "--cell-px", "4"
    )
    assert code == 0 and "world.gif" in out
    with Image.open(tmp_path / "world.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (24, 24)


def test_render_writes_a_png_contact_sheet(capsys, run_dir, tmp_path):
    code, _, _ = run(
        capsys, "render", str(run_dir), "--out", str(tmp_path / "world.png"), "--steps", "6", "--cell-px", "4"
    )
    with Image.open(tmp_path / "world.png") as png:
        assert code == 0 and png.format == "PNG" and png.size == (4 * 24 + 3 * 4, 2 * 24 + 1 * 4)  # 6 frames, 4 a row


def test_contact_sheet_keeps_first_and_last_frame_in_order():
    frames = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((7, 2, 2, 3), np.uint8)
    sheet = contact_sheet(frames, count=3, columns=3)
    assert sheet.shape == (2, 3 * 2 + 2 * 4, 3)
    assert [int(sheet[0, left, 0]) for left in (0, 6, 12)] == [0, 3, 6]


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("toy")
    Trainer(toy_task(), [CheckpointCallback()], max_steps=1, run_dir=run_dir, resume=None, async_checkpoint=False).fit()
    return run_dir


@pytest.mark.parametrize(
    "argv, says",
    [
        (["eval", "{missing}"], "does not exist"),
        (["eval", "{run}", "--steps", "0"], "--steps must be at least 1"),
        (["eval", "{run}", "--envs", "two"], "--envs"),
        (["eval", "{toy}"], "is not an `emergence train` checkpoint"),
        (["render", "{run}", "--out", "{tmp}/world.jpg"], "--out must end in .gif or .png"),
        (["render", "{run}", "--out", "{tmp}/no/dir/world.gif"], "does not exist; create it first"),
        (["render", "{run}", "--out", "{tmp}/w.gif", "--policy", "clever"], "clever"),
        (["render", "{run}"], "--out"),
        (["render", "{missing}", "--out", "{tmp}/w.png"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, run_dir, toy_checkpoint, tmp_path, argv, says):
    names = {"missing": tmp_path / "nothing", "run": run_dir, "toy": toy_checkpoint, "tmp": tmp_path}
    code, _, err = run(capsys, *[arg.format(**names) for arg in argv])
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not list(tmp_path.glob("w*.*"))
