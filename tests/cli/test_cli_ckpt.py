"""`emergence ckpt list|inspect|verify|diff|export` on checkpoints written by a real Trainer run, and on bad input."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys

import chex
import pytest
import safetensors
import safetensors.numpy

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.checkpoint import read_checkpoint
from emergence.cli import main
from emergence.testing import toy_task


def train(run_dir, max_steps=20, **task):
    callbacks = [CheckpointCallback(every_n_steps=5, keep_last=None, monitor="val_loss", save_top_k=2)]
    Trainer(toy_task(**task), callbacks, max_steps=max_steps, run_dir=run_dir, resume=None, eval_every_n_steps=5).fit()
    return run_dir / "checkpoints"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run dir with periodic, best and final checkpoints (steps 5..20), written once for the module."""
    run_dir = tmp_path_factory.mktemp("run")
    train(run_dir)
    return run_dir


@pytest.fixture
def run(trained, tmp_path):
    """A private copy of the trained run dir, free to damage."""
    return shutil.copytree(trained, tmp_path / "run")


def emergence(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    return err.strip() != "" and "\n" not in err.strip() and "Traceback" not in err


def flip_byte(path, offset=-3):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_list_shows_step_kind_time_size_metric_and_validity(capsys, run):
    code, out, _ = emergence(capsys, "ckpt", "list", run)
    assert code == 0
    header, *rows = out.splitlines()[:-1]
    assert header.split() == ["name", "step", "kind", "time", "size", "val_loss", "valid"]
    names = [row.split()[0] for row in rows]
    assert names == [
        "step_5.safetensors",
        "step_10.safetensors",
        "best_step_15.safetensors",
        "step_15.safetensors",
        "best_step_20.safetensors",
        "step_20.safetensors",
        "*final_step_20.safetensors",
    ]
    final = rows[-1].split()
    assert final[1:3] == ["20", "final"] and final[-1] == "yes"
    saved = read_checkpoint(run / "checkpoints" / "final_step_20.safetensors").manifest["metrics"]["val_loss"]
    assert float(final[-2]) == pytest.approx(saved, rel=1e-5)


def test_list_marks_a_damaged_file_invalid_and_no_verify_skips_the_check(capsys, run):
    flip_byte(run / "checkpoints" / "step_10.safetensors")
    code, out, _ = emergence(capsys, "ckpt", "list", run / "checkpoints")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("step_10."))
    assert "NO (checksum mismatch" in row
    code, out, _ = emergence(capsys, "ckpt", "list", run, "--no-verify")
    assert all(line.rstrip().endswith("?") for line in out.splitlines()[1:-1])


def test_inspect_prints_manifest_config_and_sizes_per_subtree(capsys, run):
    code, out, _ = emergence(capsys, "ckpt", "inspect", run)
    assert code == 0
    assert "step       20 (final; reason: max_steps)" in out
    assert '"hidden": [' in out and '"batch_size": 16' in out
    lines = out.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("subtree"))) + 1 :]
    assert [line.split()[0] for line in table] == ["opt_state", "opt_state/0", "params", "params/params", "rng", "step"]


def test_inspect_json_is_one_object_whose_sizes_add_up(capsys, run):
    path = run / "checkpoints" / "step_10.safetensors"
    code, out, _ = emergence(capsys, "ckpt", "inspect", path, "--json")
    report = json.loads(out)
    arrays = read_checkpoint(path).arrays
    assert code == 0 and report["manifest"]["step"] == 10 and report["checksum"].startswith("blake3:")
    assert sum(report["subtrees"][top]["bytes"] for top in ("params", "opt_state", "rng", "step")) == sum(
        a.nbytes for a in arrays.values()
    )
    assert report["arrays"]["params/params/Dense_0/kernel"] == {"dtype": "float32", "shape": [1, 8]}


def test_verify_passes_a_clean_run_and_fails_on_any_bad_file(capsys, run):
    code, out, _ = emergence(capsys, "ckpt", "verify", run)
    assert code == 0 and out.splitlines()[-1] == "7 ok, 0 bad"
    flip_byte(run / "checkpoints" / "best_step_15.safetensors")
    truncated = run / "checkpoints" / "step_5.safetensors"
    truncated.write_bytes(truncated.read_bytes()[:100])
    code, out, _ = emergence(capsys, "ckpt", "verify", run)
    assert code == 1 and out.splitlines()[-1] == "5 ok, 2 bad"
    bad = [line for line in out.splitlines() if line.startswith("BAD")]
    assert [line.split()[1] for line in bad] == ["step_5.safetensors:", "best_step_15.safetensors:"]
    assert "checksum mismatch" in bad[1]
    code, out, _ = emergence(capsys, "ckpt", "verify", run / "checkpoints" / "step_20.safetensors")
    assert code == 0 and out.startswith("ok   step_20.safetensors")


def test_verify_of_an_empty_dir_or_a_pickle_fails(capsys, tmp_path):
    code, _, err = emergence(capsys, "ckpt", "verify", tmp_path)
    assert code == 1 and one_line(err) and "nothing verified" in err
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    code, out, _ = emergence(capsys, "ckpt", "verify", pickled)
    assert code == 1 and "never loads" in out


def test_verify_notes_a_dangling_latest_pointer(capsys, run):
    (run / "checkpoints" / "final_step_20.safetensors").unlink()
    code, out, _ = emergence(capsys, "ckpt", "verify", run)
    assert code == 0 and "latest.json names 'final_step_20.safetensors', which is not here" in out


def test_diff_is_zero_for_bitwise_equal_arrays_and_lists_differing_leaves(capsys, run):
    folder = run / "checkpoints"
    code, out, _ = emergence(
        capsys, "ckpt", "diff", folder / "step_20.safetensors", folder / "final_step_20.safetensors"
    )
    assert code == 0 and "identical: 15 arrays bitwise equal" in out
    code, out, _ = emergence(capsys, "ckpt", "diff", folder / "step_15.safetensors", run)
    differing = [line.split()[1] for line in out.splitlines() if line.startswith("differs")]
    assert code == 1 and "params/params/Dense_0/kernel:" in differing and "step:" in differing
    assert "differs  step: 1 of 1 elements differ, max |a-b| = 5" in out


def test_diff_with_callbacks_also_compares_callback_state(capsys, run):
    folder = run / "checkpoints"
    pair = (folder / "step_15.safetensors", folder / "final_step_20.safetensors")  # the final links step 20's file
    code, out, _ = emergence(capsys, "ckpt", "diff", *pair, "--with-callbacks")
    assert code == 1 and "differs  callback state CheckpointCallback" in out


def test_diff_names_leaves_of_another_shape(capsys, run, tmp_path):
    other = train(tmp_path / "wide", max_steps=5, hidden=(4,))
    code, out, _ = emergence(capsys, "ckpt", "diff", run, other)
    assert code == 1 and "params/params/Dense_0/kernel: A is float32[1, 8], B is float32[1, 4]" in out


def test_export_writes_params_only_as_plain_safetensors(capsys, run, tmp_path):
    out_file = tmp_path / "export" / "policy.safetensors"
    code, out, _ = emergence(capsys, "ckpt", "export", run, out_file)
    assert code == 0 and out.startswith(f"wrote {out_file}: 4 arrays")
    exported = safetensors.numpy.load_file(str(out_file))
    source = read_checkpoint(run / "checkpoints" / "final_step_20.safetensors")
    assert sorted(exported) == sorted(n for n in source.arrays if n.startswith("params/"))
    chex.assert_trees_all_equal(exported, {n: source.arrays[n] for n in exported})
    with safetensors.safe_open(str(out_file), "numpy") as handle:
        metadata = handle.metadata()
    assert metadata["step"] == "20" and json.loads(metadata["config"])["hidden"] == [8]
    assert metadata["source_checksum"] == source.checksum


@pytest.mark.parametrize(
    "args, message",
    [
        (("--include", "nothing"), "no arrays under nothing"),
    ],
)
def test_export_of_a_missing_subtree_says_which_exist(capsys, run, tmp_path, args, message):
    code, _, err = emergence(capsys, "ckpt", "export", run, tmp_path / "x.safetensors", *args)
    assert code == 2 and one_line(err) and message in err and "subtrees there: opt_state, params, rng, step" in err


def test_export_refuses_a_directory_or_the_checkpoint_itself_as_output(capsys, run, tmp_path):
    code, _, err = emergence(capsys, "ckpt", "export", run, tmp_path)
    assert code == 2 and one_line(err) and "is a directory" in err
    source = run / "checkpoints" / "step_5.safetensors"
    before = source.read_bytes()
    code, _, err = emergence(capsys, "ckpt", "export", source, source)
    assert code == 2 and one_line(err) and "being exported" in err and source.read_bytes() == before


@pytest.mark.parametrize("subcommand", ["list", "inspect", "verify", "diff", "export"])
def test_a_missing_path_is_one_line_and_exit_2(capsys, tmp_path, subcommand):
    extra = {"diff": [tmp_path / "other"], "export": [tmp_path / "out.safetensors"]}.get(subcommand, [])
    code, _, err = emergence(capsys, "ckpt", subcommand, tmp_path / "missing", *extra)
    assert code == 2 and one_line(err) and "does not exist" in err


@pytest.mark.parametrize("subcommand", ["inspect", "diff", "export"])
def test_a_pickle_or_a_corrupt_file_is_one_line_and_exit_2(capsys, run, tmp_path, subcommand):
    pickled = tmp_path / "weights.safetensors"
    pickled.write_bytes(pickle.dumps({"w": 1}))
    corrupt = run / "checkpoints" / "step_10.safetensors"
    flip_byte(corrupt)
    extra = {"diff": [run / "checkpoints" / "step_5.safetensors"], "export": [tmp_path / "o.safetensors"]}
    for bad, says in ((pickled, "pickle"), (corrupt, "checksum mismatch")):
        code, _, err = emergence(capsys, "ckpt", subcommand, bad, *extra.get(subcommand, []))
        assert code == 2 and one_line(err) and says in err, err


def test_bad_usage_is_one_line_and_exit_2(capsys, run):
    for args in (("ckpt", "lst"), ("ckpt", "diff", run), ("ckpt", "list", run, "--bogus"), ("nope",)):
        code, _, err = emergence(capsys, *args)
        assert code == 2 and one_line(err), (args, err)


def test_the_installed_command_exits_with_the_codes_and_one_line(run):
    flip_byte(run / "checkpoints" / "step_10.safetensors")
    verify = subprocess.run(
        [sys.executable, "-m", "emergence.cli", "ckpt", "verify", str(run)], capture_output=True, text=True
    )
    assert verify.returncode == 1 and "BAD  step_10.safetensors" in verify.stdout
    inspect = subprocess.run(
        [sys.executable, "-m", "emergence.cli", "ckpt", "inspect", str(run / "checkpoints" / "step_10.safetensors")],
        capture_output=True,
        text=True,
    )
    assert inspect.returncode == 2 and one_line(inspect.stderr) and "checksum mismatch" in inspect.stderr
