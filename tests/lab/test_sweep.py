"""Sweeps keep their promises in-process: the grid's runs and names, one-line errors for bad grids (nothing
written), run i of the vmapped sweep computes what its config computes alone, the long-form metrics.csv
survives resumes. The report is tests/lab/test_sweep_report.py. The CLI end to end (run i against
`emergence train`, export, SIGKILL + resume) is tests/lab/test_sweep_cli.py (slow)."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from emergence.callbacks import TrackerCallback
from emergence.checkpoint import flatten_to_host, read_checkpoint, write_checkpoint
from emergence.cli import main
from emergence.cli.usage import UsageError
from emergence.lab.agents import PPOTask
from emergence.lab.cli.train import parse_config
from emergence.lab.run import callbacks, sweep_task
from emergence.lab.sweep.grid import parse_grid
from emergence.lab.sweep.memory import check_fits, device_limit, step_bytes
from emergence.lab.sweep.sinks import LongCSVSink, read_long_csv
from emergence.metrics import SinkStart
from emergence.parallel.export import seed_checkpoint
from tests.helpers import GRID, TINY_LAB

TINY = TINY_LAB


@pytest.fixture(scope="module", autouse=True)
def quick_compiles():
    """XLA without most optimisations while this module runs (what is tested is what runs compute)."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def test_runs_are_the_grid_product_with_seeds_innermost_and_named_by_their_values():
    config = parse_config([*TINY, "--train.seed", "7"])
    runs = parse_grid(config, ["diversity_bonus=0,0.05", "ppo.lr=1e-3,3e-4,1e-4"], 2).runs(config.train.seed)
    assert len(runs) == 12 and [run.index for run in runs] == list(range(12))
    assert runs[0].values == {"evolution.diversity_bonus": 0.0, "ppo.lr": 1e-3} and runs[0].seed == 7
    assert runs[3].values == {"evolution.diversity_bonus": 0.0, "ppo.lr": 3e-4} and runs[3].seed == 8
    assert runs[11].name == "diversity_bonus=0.05,lr=0.0001,seed=8"


@pytest.mark.parametrize(
    "args, says",
    [
        (
            ["--sweep.grid", "num_envs=2,4"],
            "--sweep.grid num_envs: train.num_envs changes the state's shapes, so it "
            "cannot vary within one sweep; set it with --train.num-envs",
        ),
        (["--sweep.grid", "hidden_sizes=8,16"], "ppo.hidden_sizes changes the state's shapes"),
        (["--sweep.grid", "env.grid_size=6,8"], "env.grid_size changes the state's shapes"),
        (["--sweep.grid", "total_steps=8,16"], "train.total_steps is fixed for the whole compiled program"),
        (["--sweep.grid", "bogus=1,2"], "--sweep.grid bogus: unknown config key 'bogus'"),
        (["--sweep.grid", "diversity_bonus="], "--sweep.grid diversity_bonus= has no values"),
        (["--sweep.grid", "diversity_bonus"], "--sweep.grid takes KEY=V1,V2,..."),
        (["--sweep.grid", "diversity_bonus=0,high"], "--sweep.grid diversity_bonus: 'high' is not a number"),
        (["--sweep.grid", "lr=1e-3", "--sweep.grid", "ppo.lr=1e-4"], "ppo.lr is already in the grid"),
        (["--sweep.seeds", "0"], "--sweep.seeds must be a positive count of seeds per grid point, got 0"),
        (["--sweep.seeds", "two"], "--sweep.seeds must be a positive count of seeds per grid point, got 'two'"),
        (["--sweep.seeds"], "--sweep.seeds needs a value"),
        (["--sweep.strategy", "pmap"], "--sweep.strategy must be auto, vmap or map, got 'pmap'"),
    ],
)
def test_a_bad_sweep_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, args, says):
    run_dir = tmp_path / "run"
    assert main(["sweep", *TINY, "--train.run-dir", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("emergence sweep: error: ") and says in err, err
    assert not run_dir.exists()


def _fake_checkpoint(run_dir, config):
    path = run_dir / "checkpoints" / "step_1.safetensors"
    path.parent.mkdir(parents=True)
    write_checkpoint(path, {"step": np.array(1)}, {"step": 1, "kind": "periodic", "config": config})
    return sorted((p.name, p.stat().st_mtime_ns) for p in path.parent.iterdir())


@pytest.mark.parametrize(
    "saved, says",
    [
        (
            {"sweep": {"grid": {"evolution.diversity_bonus": [0.0, 0.1]}, "seeds": 2}, "runs": [{"seed": 0}] * 4},
            "belongs to another sweep (grid evolution.diversity_bonus=0,0.1, seeds [0, 0, 0, 0]; this command asks for "
            "grid evolution.diversity_bonus=0,0.05 evolution.niche_pressure=0,0.05, seeds [0, 1, 0, 1, 0, 1, 0, 1])",
        ),
        ({"num_envs": 2}, "is a single run's checkpoint, not a sweep's"),
    ],
)
def test_resuming_another_sweep_or_a_single_run_is_one_line_and_touches_nothing(capsys, tmp_path, saved, says):
    before = _fake_checkpoint(tmp_path, saved)
    assert main(["sweep", *TINY, "--train.run-dir", str(tmp_path), *GRID]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "checkpoints").iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]


@pytest.mark.parametrize("strategy", ["vmap", pytest.param("map", marks=pytest.mark.slow)])  # map: 75 s on 2 cores
def test_run_i_of_the_sweep_computes_what_its_config_computes_alone(strategy):
    """Float tolerance, not bits: vmap batches each matmul, which XLA's CPU backend reduces in another order
    (seen: at most 2e-8 on params after 2 updates); `map` runs each run's own program (seen: bitwise)."""
    config = parse_config(TINY)
    task = sweep_task(config, parse_grid(config, GRID[1::2][:2], 2), strategy)
    state, step = task.init_state(jax.random.key(123)), jax.jit(task.train_step)
    for _ in range(2):
        state, metrics = step(state)
    for i in (0, 5, 7):
        alone = PPOTask(task.configs[i])
        single, single_step = alone.init_state(jax.random.key(task.runs[i].seed)), jax.jit(alone.train_step)
        for _ in range(2):
            single, single_metrics = single_step(single)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], state.params), single.params, rtol=1e-5, atol=1e-6)
        assert float(metrics[f"loss/total/run_{i}"]) == pytest.approx(float(single_metrics["loss/total"]), abs=1e-5)
    assert task.configs[5].diversity_bonus == 0.05 and task.configs[5].niche_pressure == 0.0
    assert task.config()["runs"][5]["config"] == task.configs[5].to_dict() and task.config()["runs"][5]["seed"] == 1


def _long_rows(sink, step, runs, value):
    sink.write(step, {f"loss/run_{i}": value + i for i in range(runs)} | {"loss": -1.0})


def test_long_csv_has_a_row_per_run_per_step_merges_a_step_and_is_cut_back_on_resume(tmp_path):
    config = parse_config(TINY)
    runs = parse_grid(config, ["diversity_bonus=0,0.05"], 1).runs(0)
    sink = LongCSVSink(runs)
    sink.start(SinkStart(tmp_path, 0))
    for step in (2, 4, 6):
        _long_rows(sink, step, 2, float(step))
    sink.write(6, {"eval/food/run_1": 0.5})  # an eval at the same step joins its row
    sink.close()
    header, rows = read_long_csv(tmp_path / "metrics.csv")
    assert header == ["run", "diversity_bonus", "seed", "step", "loss", "eval/food"]
    assert [(r["run"], r["step"], r["loss"], r["eval/food"]) for r in rows][-2:] == [
        ("0", "6", "6.0", ""),
        ("1", "6", "7.0", "0.5"),
    ]
    assert rows[1]["diversity_bonus"] == "0.05" and len(rows) == 6
    with open(tmp_path / "metrics.csv", "a") as handle:
        handle.write("0,0.0,0,8,8")  # a torn line, as a SIGKILL leaves it
    resumed = LongCSVSink(runs)
    resumed.start(SinkStart(tmp_path, 4))
    _long_rows(resumed, 6, 2, 60.0)
    resumed.close()
    rows = read_long_csv(tmp_path / "metrics.csv")[1]
    assert [(r["step"], r["loss"]) for r in rows] == [
        ("2", "2.0"),
        ("2", "3.0"),
        ("4", "4.0"),
        ("4", "5.0"),
        ("6", "60.0"),
        ("6", "61.0"),
    ]


@pytest.mark.slow  # 28 s on 2 cores: the default suite stays under 10 minutes
def test_a_run_with_evolution_switched_off_is_the_config_without_evolution_alone_and_exports_as_it(tmp_path):
    """Run 0 keeps heads weighted 0; alone, evolution=False has none. Same tolerance as above."""
    config = parse_config(TINY)
    task = sweep_task(config, parse_grid(config, ["evolution=0,1"], 1), "vmap")
    assert [c.evolution for c in task.configs] == [False, True] and task.runs[0].name == "evolution=0,seed=0"
    state, step = task.init_state(jax.random.key(0)), jax.jit(task.train_step)
    for _ in range(2):
        state, _ = step(state)
    for i in (0, 1):
        alone = PPOTask(task.configs[i])
        single, single_step = alone.init_state(jax.random.key(task.runs[i].seed)), jax.jit(alone.train_step)
        for _ in range(2):
            single, _ = single_step(single)
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], state.params), single.params, rtol=1e-5, atol=1e-6)
    arrays, typed = flatten_to_host(state)
    path = tmp_path / "sweep.safetensors"
    write_checkpoint(path, arrays, {"step": 2, "kind": "final", "config": task.config(), "typed_keys": typed})
    exported, manifest = seed_checkpoint(read_checkpoint(path), 0, "--run")
    alone_names = set(flatten_to_host(PPOTask(task.configs[0]).init_state(jax.random.key(0)))[0])
    assert set(exported) == alone_names and manifest["config"]["evolution"] is False
    assert manifest["exported"]["values"] == {"evolution.enabled": 0.0} and "drop" not in manifest["exported"]


def test_switching_evolution_needs_it_on_and_takes_only_on_or_off(capsys, tmp_path):
    for args, says in [
        (["--evolution.no-enabled", "--sweep.grid", "evolution=0,1"], "leave --evolution.enabled on"),
        (["--sweep.grid", "evolution=0,0.5"], "'0.5' is not on or off"),
    ]:
        assert main(["sweep", *TINY, "--train.run-dir", str(tmp_path / "run"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, says",
    [
        ([], "emergence report takes one argument: the run dir of a sweep"),
        (["{tmp}/nothing"], "nothing has no metrics.csv; pass the --train.run-dir of a sweep"),
        (["{tmp}/single"], "is not a sweep's long-form metrics CSV"),
    ],
)
def test_a_bad_report_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, args, says):
    (tmp_path / "single").mkdir()
    (tmp_path / "single" / "metrics.csv").write_text("step,loss\n1,0.5\n")
    assert main(["report", *(a.format(tmp=tmp_path) for a in args)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert sorted(p.name for p in (tmp_path / "single").iterdir()) == ["metrics.csv"]


@pytest.mark.slow  # 26 s of compiling sweeps to find what fits; CI's slow stage runs it
def test_a_sweep_larger_than_the_device_is_refused_with_the_run_count_that_fits():
    config = parse_config(TINY)
    task = sweep_task(config, parse_grid(config, ["diversity_bonus=0,0.05"], 2), "vmap")
    needed = step_bytes(task)
    assert needed > 0
    check_fits(task, limit=2 * needed)  # fits: no error
    check_fits(task, limit=None if device_limit() is None else 10 * needed)  # a CPU reports no limit: not checked
    with pytest.raises(
        UsageError,
        match=r"this sweep of 4 runs needs about .* GiB on the device, which has .* GiB: "
        r"at most 2 runs fit; use fewer --sweep.grid values or --sweep.seeds",
    ):
        check_fits(task, limit=int(needed * 0.6 / 0.9), needed=needed)


def test_every_run_of_a_sweep_has_its_own_trackers_fed_by_its_metrics_and_probe_slice():
    config = parse_config([*TINY, "--train.track-interval", "8"])
    task = sweep_task(config, parse_grid(config, ["evolution=0,1"], 1), "vmap")
    trackers = next(cb for cb in callbacks(config, "local", task) if isinstance(cb, TrackerCallback))
    assert [t.name for t in trackers.trackers] == [
        "emergence/run_0",
        "specialization/run_0",
        "emergence/run_1",
        "specialization/run_1",
    ]
    state, metrics = jax.jit(task.train_step)(task.init_state(jax.random.key(0)))
    values = jax.device_get(metrics | jax.jit(trackers.probe)(state))
    for tracker in trackers.trackers:
        tracker.update(1, values)
    off, on = trackers.trackers[1].history, trackers.trackers[3].history
    assert off.value_list("weight_divergence")[-1] == pytest.approx(0.0)  # evolution off: the heads do not act
    assert on.value_list("weight_divergence")[-1] > 0.0
    assert trackers.trackers[0].history.value_list("population")[-1] == pytest.approx(
        float(values["env/population/run_0"])
    )


def _fake_sweep(tmp_path):
    runs = [
        {
            "name": f"diversity_bonus={b:g},seed={s}",
            "values": {"evolution.diversity_bonus": b},
            "seed": s,
            "config": {"diversity_bonus": b},
        }
        for b in (0.0, 0.05)
        for s in (0, 1)
    ]
    path = tmp_path / "sweep.safetensors"
    write_checkpoint(
        path,
        {"step": np.array([3, 3, 3, 3]), "w": np.arange(4.0)},
        {"step": 3, "kind": "final", "config": {"num_seeds": 4, "task": {}, "runs": runs}},
    )
    return path


@pytest.mark.parametrize(
    "spec, index",
    [
        ("2", 2),
        ("diversity_bonus=0.05,seed=0", 2),
        ("evolution.diversity_bonus=0.05,seed=1", 3),
        ("seed=1,diversity_bonus=0", 1),
    ],
)
def test_export_run_by_index_or_by_its_values(tmp_path, capsys, spec, index):
    out = tmp_path / "out.safetensors"
    assert main(["ckpt", "export", "--run", spec, str(_fake_sweep(tmp_path)), str(out)]) == 0
    exported = read_checkpoint(out)
    assert exported.arrays["w"] == float(index) and exported.manifest["exported"]["run"] == index
    assert exported.manifest["config"] == {"diversity_bonus": 0.05 if index >= 2 else 0.0}


@pytest.mark.parametrize(
    "spec, says",
    [
        (
            "diversity_bonus=0.05",
            "--run diversity_bonus=0.05 matches 2 runs of sweep.safetensors, not one; its runs are: "
            "diversity_bonus=0,seed=0; diversity_bonus=0,seed=1",
        ),
        ("lr=1", "matches 0 runs"),
        ("abc", "--run takes an index or key=value pairs"),
        ("4", "--run 4 is out of range"),
    ],
)
def test_a_bad_export_run_is_one_line_and_writes_nothing(tmp_path, capsys, spec, says):
    out = tmp_path / "out.safetensors"
    assert main(["ckpt", "export", "--run", spec, str(_fake_sweep(tmp_path)), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not out.exists()
