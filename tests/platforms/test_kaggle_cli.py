"""`emergence kaggle ...` against the official `kaggle` CLI with only its network replaced, and a stand-in.

Where what we send is the question (push, its metadata and `--timeout`, logs, retired
accelerators, credentials) the `official` fixture puts the installed `kaggle` package
first on PATH with only `requests`' socket call replaced (tests/fake_kaggle/offline_kaggle.py):
its own argument parser and metadata checks judge the command, and the request it would
have sent is recorded. Where a sequence of server answers is the question (status
polling, `run`, output downloads) the `fake` fixture puts a hand-written stand-in
(tests/fake_kaggle/kaggle) there instead, answering in the official output format.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emergence import Trainer
from emergence.callbacks import CheckpointCallback
from emergence.cli.kaggle import main
from emergence.platforms.kaggle_workflow import (
    CREDENTIALS_HINT,
    MACHINE_SHAPES,
    RETIRED_SHAPES,
    KaggleCommandError,
    KernelMetadataError,
    build_metadata,
    parse_status,
    validate_metadata,
)
from emergence.testing import toy_task

FAKE_DIR = Path(__file__).parents[1] / "fake_kaggle"
KERNEL = "alice/emergence-training"
NOTEBOOK = "kaggle_training.ipynb"


class FakeKaggle:
    """The stand-in's switches and its record of calls."""

    def __init__(self, log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log, self.monkeypatch = log, monkeypatch

    def set(self, **env: str) -> None:
        for name, value in env.items():
            self.monkeypatch.setenv(f"FAKE_KAGGLE_{name.upper()}", value)

    def calls(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKaggle:
    """A project folder with a notebook, the stand-in first on PATH, legacy credentials in the env."""
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / NOTEBOOK).write_text('{"cells": [], "nbformat": 4, "nbformat_minor": 5}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{FAKE_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    monkeypatch.setenv("FAKE_KAGGLE_LOG", str(tmp_path / "kaggle-calls.jsonl"))
    return FakeKaggle(tmp_path / "kaggle-calls.jsonl", monkeypatch)


class OfficialKaggle:
    """The official CLI's record of the requests it would have sent, and its switches."""

    def __init__(self, log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log, self.monkeypatch = log, monkeypatch

    def set(self, **env: str) -> None:
        for name, value in env.items():
            self.monkeypatch.setenv(f"OFFLINE_KAGGLE_{name.upper()}", value)

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture
def official(fake: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OfficialKaggle:
    """As `fake`, but the `kaggle` first on PATH is the installed official package, offline."""
    if not (importlib.util.find_spec("kaggle") and importlib.util.find_spec("six")):
        pytest.skip("the official kaggle CLI is not installed: pip install 'kaggle>=2.2.5' six")
    bin_dir = tmp_path / "official-bin"
    bin_dir.mkdir()
    shim = bin_dir / "kaggle"
    shim.write_text(
        f"#!{sys.executable}\nimport runpy\n"
        f"runpy.run_path({str(FAKE_DIR / 'offline_kaggle.py')!r}, run_name='__main__')\n"
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OFFLINE_KAGGLE_LOG", str(tmp_path / "kaggle-requests.jsonl"))
    return OfficialKaggle(tmp_path / "kaggle-requests.jsonl", monkeypatch)


def _init(*extra: str) -> int:
    """`emergence kaggle init --username alice ...`, its confirmation line swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return main(["init", "--username", "alice", *extra])


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# init


def test_init_writes_every_field_kaggle_reads_with_the_kernel_itself_as_a_source(fake):
    assert _init() == 0
    meta = json.loads(Path("notebooks/kernel-metadata.json").read_text())
    assert meta == {
        "id": KERNEL,
        "title": "Emergence Training",
        "code_file": NOTEBOOK,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": True,
        "machine_shape": "NvidiaTeslaT4",
        "dataset_sources": [],
        "kernel_sources": [KERNEL],
        "competition_sources": [],
        "model_sources": [],
    }
    assert fake.calls() == []  # init works offline


@pytest.mark.parametrize(
    "flag, gpu, tpu, shape",
    [
        ("p100", True, False, "NvidiaTeslaP100"),
        ("tpu", False, True, "TpuV5E8"),
        ("tpuv3", False, True, "TpuV38"),
        ("none", False, False, ""),
    ],
)
def test_init_accelerator_sets_gpu_tpu_and_machine_shape(fake, flag, gpu, tpu, shape):
    assert _init("--accelerator", flag, "--no-internet", "--public", "--dataset", "alice/emergence-wheel") == 0
    meta = json.loads(Path("notebooks/kernel-metadata.json").read_text())
    assert (meta["enable_gpu"], meta["enable_tpu"], meta["machine_shape"]) == (gpu, tpu, shape)
    assert (meta["enable_internet"], meta["is_private"]) == (False, False)
    assert meta["dataset_sources"] == ["alice/emergence-wheel"]


def test_init_refuses_a_short_slug_in_one_line_and_writes_nothing(fake, capsys):
    assert _init("--slug", "demo") == 2
    assert "at least 5 characters" in _one_line(capsys.readouterr().err)
    assert not Path("notebooks/kernel-metadata.json").exists()


def test_init_refuses_a_folder_without_the_notebook(fake, capsys):
    Path("elsewhere").mkdir()
    assert _init("--dir", "elsewhere") == 2
    assert "code_file 'kaggle_training.ipynb' not found" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"id": "alice-emergence-training"}, "must be 'owner/slug'"),
        ({"id": "/emergence-training"}, "must be 'owner/slug'"),
        ({"id": None, "id_no": None}, "has no id"),
        ({"title": "Run"}, "shorter than 5"),
        ({"code_file": ""}, "code_file '' not found"),
        ({"code_file": "../../.kaggle/kaggle.json"}, "must be a plain file name inside"),
        ({"code_file": "/etc/passwd"}, "must be a plain file name inside"),
        ({"code_file": "sub/kaggle_training.ipynb"}, "must be a plain file name inside"),
        ({"language": "julia"}, "language='julia' must be one of python, r, rmarkdown"),
        ({"kernel_type": "app"}, "kernel_type='app' must be one of script, notebook"),
        ({"enable_gpu": "yes"}, "enable_gpu='yes' must be true or false"),
        ({"kernel_sources": ["alice/abc"]}, "slug must be at least 5"),
        ({"dataset_sources": ["wheel"]}, "must be 'owner/dataset-slug'"),
        ({"model_sources": ["google/gemma"]}, "must be 'owner/model/framework/variation/version'"),
    ],
)
def test_metadata_is_validated_the_way_kaggle_kernels_push_validates_it(tmp_path, change, message):
    (tmp_path / NOTEBOOK).write_text("{}")
    meta = {**build_metadata("alice"), **change}
    with pytest.raises(KernelMetadataError, match=message):
        validate_metadata(meta, tmp_path)


def test_string_booleans_like_the_cli_template_are_accepted(tmp_path):
    (tmp_path / NOTEBOOK).write_text("{}")
    validate_metadata({**build_metadata("alice"), "is_private": "true", "enable_gpu": "False"}, tmp_path)


# push: judged by the official CLI


def _sent(official: OfficialKaggle) -> dict:
    """The one SaveKernel request the official CLI would have sent."""
    [request] = official.requests()
    assert request["url"] == "/v1/kernels.KernelsApiService/SaveKernel"
    return request


def test_push_runs_kaggle_kernels_push_and_the_official_cli_sends_our_metadata(official, capsys):
    _init()
    assert main(["push"]) == 0
    request = _sent(official)
    assert request["argv"] == ["kernels", "push", "-p", "notebooks"]
    body = request["body"]
    assert (body["slug"], body["newTitle"], body["kernelType"], body["language"]) == (
        KERNEL,
        "Emergence Training",
        "notebook",
        "python",
    )
    assert (body["machineShape"], body["enableGpu"], body["enableInternet"], body["isPrivate"]) == (
        "NvidiaTeslaT4",
        True,
        True,
        True,
    )
    assert body["kernelDataSources"] == [KERNEL] and "sessionTimeoutSeconds" not in body
    assert json.loads(body["text"])["cells"] == []
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"Kernel version 1 successfully pushed.  Please check progress at https://www.kaggle.com/code/{KERNEL}"
    )


@pytest.mark.parametrize("accelerator", [a for a in MACHINE_SHAPES])
def test_the_official_cli_accepts_the_metadata_of_every_accelerator(official, accelerator):
    _init("--accelerator", accelerator)
    assert main(["push"]) == 0
    body = _sent(official)["body"]
    assert body.get("machineShape", "") == MACHINE_SHAPES[accelerator]
    assert body.get("enableTpu", False) == accelerator.startswith("tpu")


def test_push_timeout_goes_to_kaggle_kernels_push_timeout(official):
    _init()
    assert main(["push", "--timeout", "3600"]) == 0
    request = _sent(official)
    assert request["argv"] == ["kernels", "push", "-p", "notebooks", "--timeout", "3600"]
    assert request["body"]["sessionTimeoutSeconds"] == 3600


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "an hour"])
def test_push_timeout_must_be_whole_positive_seconds(official, capsys, value):
    _init()
    with pytest.raises(SystemExit) as exited:
        main(["push", "--timeout", value])
    assert exited.value.code == 2
    assert "must be a whole positive number of seconds" in capsys.readouterr().err
    assert official.requests() == []


@pytest.mark.parametrize(
    "accelerator, shape, instead",
    [
        ("p100", "NvidiaTeslaP100", "the default GPU (NvidiaTeslaT4): use --accelerator t4x2"),
        ("tpuv3", "TpuV38", "the default TPU (TpuV5E8): use --accelerator tpu"),
    ],
)
def test_a_retired_accelerator_warns_at_init_and_push_and_is_sent_as_asked(
    official, capsys, accelerator, shape, instead
):
    warning = f"emergence kaggle: warning: machine_shape '{shape}' is retired; Kaggle runs the session on {instead}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["init", "--username", "alice", "--accelerator", accelerator]) == 0
    assert _one_line(capsys.readouterr().err) == warning
    assert main(["push"]) == 0
    assert _one_line(capsys.readouterr().err) == warning
    assert _sent(official)["body"]["machineShape"] == shape


def test_our_retired_shapes_are_the_official_clis(official):
    listed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kaggle.api import kaggle_api_extended as k; print(' '.join(sorted(k._RETIRED_ACCELERATORS)))",
        ],
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(RETIRED_SHAPES) == listed.stdout.split()


def test_push_new_leaves_the_kernels_own_output_out_of_the_first_version(official):
    _init("--dataset", "alice/emergence-wheel")
    committed = Path("notebooks/kernel-metadata.json").read_text()
    assert main(["push", "--new"]) == 0
    request = _sent(official)
    assert request["argv"][:3] == ["kernels", "push", "-p"] and request["argv"][3] != "notebooks"
    assert "kernelDataSources" not in request["body"]  # empty: the CLI leaves it out
    assert request["body"]["datasetDataSources"] == ["alice/emergence-wheel"]
    assert Path("notebooks/kernel-metadata.json").read_text() == committed
    assert not Path(request["argv"][3]).exists()  # the staged copy is gone


def test_push_error_printed_with_exit_0_by_kaggle_is_a_failure(official, capsys):
    _init()
    official.set(push_error="Maximum batch GPU session count of 2 reached.")
    assert main(["push"]) == 1
    assert _one_line(capsys.readouterr().err) == (
        "emergence kaggle: Kernel push error: Maximum batch GPU session count of 2 reached."
    )


def test_push_without_metadata_says_to_run_init(official, capsys):
    assert main(["push"]) == 2
    assert "emergence kaggle init --username U" in _one_line(capsys.readouterr().err)
    assert official.requests() == []


def test_the_official_cli_without_credentials_is_the_credentials_hint(official, monkeypatch, capsys):
    _init()
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert main(["push"]) == 2
    assert _one_line(capsys.readouterr().err) == f"emergence kaggle: {CREDENTIALS_HINT}"
    assert official.requests() == []


# logs: through the official CLI


def test_logs_prints_the_latest_sessions_log(official, capsys):
    _init()
    official.set(log_text="step 100\nsaved step_100.safetensors")
    assert main(["logs"]) == 0
    [request] = official.requests()
    assert request["argv"] == ["kernels", "logs", KERNEL]
    assert request["url"] == "/v1/kernels.KernelsApiService/ListKernelSessionOutput"
    assert request["body"] == {"userName": "alice", "kernelSlug": "emergence-training"}
    assert capsys.readouterr().out.splitlines()[:2] == ["step 100", "saved step_100.safetensors"]


def test_logs_follow_streams_the_running_session(official, capsys):
    official.set(log_text="step 1\nstep 2\nstep 3")
    assert main(["logs", "bob/other-kernel", "--follow"]) == 0
    [request] = official.requests()
    assert request["argv"] == ["kernels", "logs", "bob/other-kernel", "--follow"]
    assert request["url"] == "/v1/kernels/logs/stream/bob/other-kernel"
    assert capsys.readouterr().out.splitlines() == ["step 1", "step 2", "step 3"]


def test_logs_of_a_malformed_kernel_is_one_line(official, capsys):
    assert main(["logs", "not-a-kernel"]) == 2
    assert "kernel 'not-a-kernel' must be 'owner/slug'" in _one_line(capsys.readouterr().err)
    assert official.requests() == []


# status


@pytest.mark.parametrize(
    "state, code",
    [
        ("QUEUED", 3),
        ("RUNNING", 3),
        ("NEW_SCRIPT", 3),
        ("CANCEL_REQUESTED", 3),
        ("COMPLETE", 0),
        ("ERROR", 1),
        ("CANCEL_ACKNOWLEDGED", 1),
    ],
)
def test_status_parses_each_kernel_worker_status(fake, capsys, state, code):
    _init()
    fake.set(statuses=state, failure="CUDA out of memory")
    assert main(["status"]) == code
    assert fake.argvs() == [["kernels", "status", KERNEL]]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{KERNEL}: {state}"
    assert out[1:] == (["failure message: CUDA out of memory"] if code == 1 else [])


@pytest.mark.parametrize("state, code", [("QUEUED", 3), ("RUNNING", 3), ("COMPLETE", 0), ("ERROR", 1)])
def test_status_reads_what_the_official_cli_prints(official, capsys, state, code):
    _init()
    official.set(statuses=state, failure='CUDA out of memory in "train"')
    assert main(["status"]) == code
    [request] = official.requests()
    assert request["url"] == "/v1/kernels.KernelsApiService/GetKernelSessionStatus"
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{KERNEL}: {state}"] + (['failure message: CUDA out of memory in "train"'] if code == 1 else [])


def test_status_watch_retries_a_dropped_connection_of_the_official_cli(official, capsys):
    _init()
    official.set(statuses="RUNNING,FAIL,COMPLETE")
    assert main(["status", "--watch", "--interval", "0.01"]) == 0
    assert len(official.requests()) == 3
    assert capsys.readouterr().out.splitlines() == [f"{KERNEL}: RUNNING", f"{KERNEL}: COMPLETE"]


def test_status_reads_the_lowercase_form_of_older_clis(fake, capsys):
    fake.set(statuses="ERROR", legacy="1")
    assert main(["status", "bob/other-kernel"]) == 1
    assert fake.argvs() == [["kernels", "status", "bob/other-kernel"]]
    assert capsys.readouterr().out.splitlines() == ["bob/other-kernel: ERROR"]


def test_parse_status_keeps_a_multiline_failure_message():
    printed = f'{KERNEL} has status "KernelWorkerStatus.ERROR"\nFailure message: "line one\nline \\"two\\""\n'
    parsed = parse_status(printed)
    assert (parsed.state, parsed.failure_message, parsed.failed) == ("ERROR", 'line one\nline \\"two\\"', True)


@pytest.mark.parametrize(
    "printed, message",
    [
        (f'{KERNEL} has status "KernelWorkerStatus.PAUSED"', "unknown kernel status 'PAUSED'"),
        ("404 Client Error: Not Found for url", "printed no status: 404 Client Error"),
    ],
)
def test_parse_status_refuses_what_it_cannot_read(printed, message):
    with pytest.raises(KaggleCommandError, match=message):
        parse_status(printed)


def test_status_watch_polls_at_the_interval_until_complete(fake, capsys):
    _init()
    fake.set(statuses="QUEUED,RUNNING,RUNNING,COMPLETE")
    assert main(["status", "--watch", "--interval", "0.01"]) == 0
    assert fake.argvs() == [["kernels", "status", KERNEL]] * 4
    assert capsys.readouterr().out.splitlines() == [f"{KERNEL}: {s}" for s in ("QUEUED", "RUNNING", "COMPLETE")]


def test_status_watch_retries_a_failed_poll_but_not_forever(fake, capsys):
    _init()
    fake.set(statuses="RUNNING,FAIL,FAIL,COMPLETE")
    assert main(["status", "--watch", "--interval", "0.01"]) == 0
    fake.log.unlink()
    fake.set(statuses="FAIL")
    assert main(["status", "--watch", "--interval", "0.01"]) == 1
    assert len(fake.calls()) == 4  # the first try and three retries
    assert "Max retries exceeded" in capsys.readouterr().err.splitlines()[-1]


def test_status_interval_must_be_positive(fake, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["status", "--watch", "--interval", "0"])
    assert exited.value.code == 2
    assert "must be a positive number of seconds" in capsys.readouterr().err


# run


def test_run_pushes_then_waits_ignoring_the_previous_versions_result(official, capsys):
    _init()
    official.set(statuses="COMPLETE,QUEUED,RUNNING,ERROR", failure="Your notebook tried to allocate more memory")
    assert main(["run", "--interval", "0.01", "--timeout", "7200"]) == 1
    requests = official.requests()
    assert [r["argv"] for r in requests] == (
        [["kernels", "push", "-p", "notebooks", "--timeout", "7200"]] + [["kernels", "status", KERNEL]] * 4
    )
    assert requests[1]["body"] == {"userName": "alice", "kernelSlug": "emergence-training"}
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        f"{KERNEL}: QUEUED",
        f"{KERNEL}: RUNNING",
        f"{KERNEL}: ERROR",
        "failure message: Your notebook tried to allocate more memory",
    ]


def test_run_believes_a_finished_status_after_three_polls(official):
    _init()
    official.set(statuses="COMPLETE")
    assert main(["run", "--new", "--interval", "0.01"]) == 0
    assert [r["argv"][1] for r in official.requests()] == ["push"] + ["status"] * 4


# download


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir with real checkpoints (steps 2, 4 and final 4), trained once for this module."""
    root = tmp_path_factory.mktemp("trained")
    Trainer(
        toy_task(),
        [CheckpointCallback(every_n_steps=2, keep_last=5)],
        max_steps=4,
        run_dir=root,
        async_checkpoint=False,
    ).fit()
    (root / "summary.json").write_text('{"step": 4}\n')
    return root


def _kaggle_output(trained: Path, root: Path, *, sums: bool = True) -> Path:
    """What a finished session leaves in /kaggle/working: checkpoints, a summary, SHA256SUMS."""
    shutil.copytree(trained, root)
    if sums:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}" for p in files]
        (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root


def test_download_fetches_output_verifies_sums_and_lists_checkpoints(fake, trained, tmp_path, capsys):
    _init()
    fake.set(output=str(_kaggle_output(trained, tmp_path / "session")))
    assert main(["download"]) == 0
    assert fake.argvs() == [["kernels", "output", KERNEL, "-p", "kaggle_output/emergence-training", "-o"]]
    out = capsys.readouterr().out.splitlines()
    checkpoints = Path("kaggle_output/emergence-training/checkpoints")
    assert out[0] == f"downloaded {KERNEL} to kaggle_output/emergence-training; 7 file(s) verified"
    assert [line.split()[:3] for line in out[1:-1]] == [
        ["periodic", "step", "2"],
        ["periodic", "step", "4"],
        ["final", "step", "4"],
    ]
    assert out[-1] == f"resume locally: emergence train --train.resume-from {checkpoints}"


def test_download_with_a_damaged_file_exits_1_in_one_line(fake, trained, tmp_path, capsys):
    source = _kaggle_output(trained, tmp_path / "session")
    data = bytearray((source / "checkpoints" / "step_2.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (source / "checkpoints" / "step_2.safetensors").write_bytes(bytes(data))
    fake.set(output=str(source))
    assert main(["download", KERNEL, "--output-dir", "out"]) == 1
    assert _one_line(capsys.readouterr().err) == (
        "emergence kaggle: out/checkpoints/step_2.safetensors does not match its SHA256SUMS entry: "
        "the download is damaged; download again"
    )


def test_download_with_recomputed_sums_still_checks_each_checkpoints_own_checksum(fake, trained, tmp_path, capsys):
    """SHA256SUMS is recomputable by anyone: a damaged checkpoint listed with its new digest is still refused."""
    session = tmp_path / "session"
    shutil.copytree(trained, session)
    data = bytearray((session / "checkpoints" / "step_2.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (session / "checkpoints" / "step_2.safetensors").write_bytes(bytes(data))
    shutil.rmtree(source := tmp_path / "relisted", ignore_errors=True)
    fake.set(output=str(_kaggle_output(session, source)))
    assert main(["download", KERNEL, "--output-dir", "out"]) == 1
    assert "step_2.safetensors" in _one_line(capsys.readouterr().err)


def test_download_without_sums_checks_each_checkpoints_own_checksum(fake, trained, tmp_path, capsys):
    source = _kaggle_output(trained, tmp_path / "session", sums=False)
    fake.set(output=str(source))
    assert main(["download", KERNEL, "--output-dir", "out"]) == 0
    assert "3 file(s) verified" in capsys.readouterr().out
    data = bytearray((source / "checkpoints" / "final_step_4.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (source / "checkpoints" / "final_step_4.safetensors").write_bytes(bytes(data))
    assert main(["download", KERNEL, "--output-dir", "out"]) == 1
    assert "final_step_4.safetensors" in _one_line(capsys.readouterr().err)


# setup problems


def test_missing_kaggle_executable_says_pip_install_kaggle_and_exits_2(fake, tmp_path, monkeypatch, capsys):
    _init()
    monkeypatch.setenv("PATH", str(tmp_path / "home"))
    assert main(["status"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "emergence kaggle: the official `kaggle` command is not on PATH: run `pip install kaggle`, then retry"
    )


def test_missing_credentials_names_the_token_locations_and_exits_2(fake, monkeypatch, capsys):
    _init()
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    assert main(["push"]) == 2
    line = _one_line(capsys.readouterr().err)
    for hint in (
        "kaggle auth login",
        "~/.kaggle/access_token",
        "KAGGLE_API_TOKEN",
        "kaggle.json",
        "KAGGLE_CONFIG_DIR",
        "KAGGLE_USERNAME and KAGGLE_KEY",
    ):
        assert hint in line
    assert fake.calls()[0]["refused"] == "no credentials"


def test_a_token_file_in_the_kaggle_config_dir_counts_as_credentials(fake, tmp_path, monkeypatch):
    _init()
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    (tmp_path / "home" / ".kaggle").mkdir()
    (tmp_path / "home" / ".kaggle" / "access_token").write_text("KGAT_not_real")
    assert main(["status"]) == 0


def test_emergence_kaggle_exits_with_the_status_in_a_real_process(fake, tmp_path):
    _init()
    env = {**os.environ, "FAKE_KAGGLE_STATUSES": "CANCEL_ACKNOWLEDGED", "FAKE_KAGGLE_FAILURE": "cancelled by user"}
    done = subprocess.run(
        [sys.executable, "-m", "emergence.cli", "kaggle", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [f"{KERNEL}: CANCEL_ACKNOWLEDGED", "failure message: cancelled by user"]


# the notebook's first cell: how many accelerators, and a T4 x2 session showing one


def _environment_cell(tmp_path: Path, gpus: list[str]) -> subprocess.CompletedProcess:
    """Run the notebook's environment cell with an `nvidia-smi` that lists `gpus`."""
    notebook = json.loads((Path(__file__).parents[2] / "notebooks" / NOTEBOOK).read_text())
    source = "".join(notebook["cells"][2]["source"])
    bin_dir = tmp_path / "gpu-bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in gpus))
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "EMERGENCE_KAGGLE_ROOT": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", source], capture_output=True, text=True, env=env, timeout=120
    )


T4 = "GPU {i}: Tesla T4 (UUID: GPU-0000000{i})"


def test_the_first_cell_counts_two_t4s_without_a_warning(tmp_path):
    done = _environment_cell(tmp_path, [T4.format(i=0), T4.format(i=1)])
    assert done.returncode == 0, done.stderr
    assert "accelerator gpu · 2 device(s)" in done.stdout
    assert "ONE GPU" not in done.stderr


def test_the_first_cell_warns_when_a_t4x2_session_shows_one_gpu(tmp_path):
    done = _environment_cell(tmp_path, [T4.format(i=0)])
    assert done.returncode == 0, done.stderr
    assert "accelerator gpu · 1 device(s)" in done.stdout
    assert "ONE GPU: this T4 x2 session shows a single T4" in done.stderr
