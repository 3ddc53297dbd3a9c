"""WandbCallback: one Weights & Biases run per training run, continued across resumes.

    wandb_cb = WandbCallback(project="emergence")
    Trainer(callbacks=[CheckpointCallback(every_n_steps=1000),
                       LogThrottleCallback(every_n_steps=100, sinks=[CSVSink(), wandb_cb.sink]),
                       wandb_cb], max_steps=100_000).fit(task)

The callback owns the run: it opens it as training starts, records the config (the
task's and the Trainer's) and where checkpoints go, keeps the latest checkpoint's path
and step in the run's summary, and finishes the run at `teardown`. Metrics reach W&B
through its `sink`, a `WandbSink` the `LogThrottleCallback` writes to at its throttled
interval, so W&B costs no device sync of its own.

Resume: the run id travels in every checkpoint (`state_dict`), and a resumed run opens
the same run again with `resume="allow"`; the rows the checkpoint carries for replay
are logged first (see `emergence.metrics.wandb_sink`). Offline (`WANDB_MODE=offline`, or
`mode="offline"`, for a machine without internet), each session writes its own
directory under `<run dir>/wandb/`, and `teardown` prints the one `wandb sync` line
that uploads them all, in order, as one run (with those of the run dir resumed from,
when that is another one: a previous Kaggle session's output).
"""

from __future__ import annotations

import os
import re
import secrets
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emergence.callbacks.base import Callback
from emergence.log import get_logger
from emergence.metrics.wandb_sink import STEP_METRIC, WandbSink, require_wandb
from emergence.parallel.process_zero import writes_outputs
from emergence.task import task_config

if TYPE_CHECKING:
    from emergence.checkpoint import CheckpointRef
    from emergence.stop import StopReason
    from emergence.trainer import Trainer

log = get_logger("emergence.callbacks")


class WandbCallback(Callback):
    """Opens, records and finishes a W&B run; its `sink` carries the throttled metrics. See the module docstring.

    Args:
        project, entity, name, tags, group, notes: passed to `wandb.init`.
        mode: `"online"`, `"offline"` or `"disabled"`; None lets W&B decide (`WANDB_MODE`).
        dir: where W&B writes its files (default: the run dir, so they travel with the outputs).
        run_id: the run to write to when no checkpoint names one (default: a new id).
        config: extra config recorded beside the task's and the Trainer's.
        replay_seconds: rows kept for replay after a SIGKILL (see `WandbSink`).
        init_kwargs: anything else for `wandb.init` (e.g. `settings=wandb.Settings(...)`).
        say: prints the `wandb sync` line of an offline run.

    Asking for it without the `wandb` package installed is a one-line ImportError. Put it
    before `SignalCheckpointCallback`, whose `teardown` ends the process (W&B's own exit
    hook would still finish the run, but the sync line would not be printed).
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        entity: str | None = None,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        group: str | None = None,
        notes: str | None = None,
        mode: str | None = None,
        dir: str | os.PathLike | None = None,
        run_id: str | None = None,
        config: dict[str, Any] | None = None,
        replay_seconds: float = 60.0,
        init_kwargs: dict[str, Any] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.wandb = require_wandb()
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(f"mode must be 'online', 'offline', 'disabled' or None (W&B decides), got {mode!r}")
        self.init_args = {
            "project": project,
            "entity": entity,
            "name": name,
            "tags": list(tags) if tags else None,
            "group": group,
            "notes": notes,
            "mode": mode,
            **(init_kwargs or {}),
        }
        self.dir = dir
        self.requested_id = run_id
        self.config = dict(config or {})
        self.say = say
        self.sink = WandbSink(replay_seconds=replay_seconds)
        self.run_id: str | None = None
        self.run: Any = None
        self.sync_command: str | None = None
        self._replay: list[tuple[int, dict[str, float]]] = []
        self._trainer: "Trainer | None" = None

    def state_dict(self) -> dict[str, Any]:
        step = self._trainer.step if self._trainer is not None else 0
        return {"run_id": self.run_id, "replay": [[s, v] for s, v in self.sink.recent(step)]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id") or self.run_id
        self._replay = [(int(step), dict(values)) for step, values in state.get("replay", [])]

    def setup(self, trainer: "Trainer") -> None:
        self._trainer = trainer if writes_outputs() else None  # under jax.distributed, process 0 logs
        self.run_id, self._replay, self.sync_command = None, [], None

    def on_fit_start(self, trainer: "Trainer") -> None:
        if self._trainer is None:
            return
        run_id = self.run_id or self.requested_id or new_run_id()
        root = Path(self.dir) if self.dir is not None else Path(trainer.run_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.run = self.wandb.init(id=run_id, resume="allow", dir=str(root), **self.init_args)
        self.run_id = self.run.id
        self.run.config.update(self._config(trainer), allow_val_change=True)
        self.run.define_metric(STEP_METRIC)
        self.run.define_metric("*", step_metric=STEP_METRIC)
        if trainer.resumed_from is not None:
            self.run.summary.update(
                {
                    "checkpoint/resumed_from": str(trainer.resumed_from.path),
                    "checkpoint/resumed_step": trainer.resumed_from.step,
                }
            )
        self.sink.attach(self.run, self._replay)
        log.info(
            "wandb: run %s (%s), from step %d%s",
            self.run_id,
            self.run.settings.mode,
            trainer.step,
            f", {len(self._replay)} rows replayed" if self._replay else "",
        )
        if not _sink_is_used(trainer, self.sink):
            log.warning(
                "wandb: no LogThrottleCallback writes to WandbCallback.sink, so no metrics reach W&B; "
                "pass LogThrottleCallback(sinks=[..., wandb_callback.sink])"
            )

    def on_save_checkpoint(self, trainer: "Trainer", ref: "CheckpointRef") -> None:
        if self.run is not None:
            self.run.summary.update(
                {
                    "checkpoint/latest": str(ref.path),
                    "checkpoint/latest_step": ref.step,
                    "checkpoint/latest_kind": ref.kind,
                }
            )

    def on_fit_end(self, trainer: "Trainer", reason: "StopReason") -> None:
        if self.run is not None:  # what the callbacks publish (trainer.summary()), then why and where it stopped
            self.run.summary.update({**trainer.summary(), "stop_reason": str(reason), "final_step": trainer.step})

    def teardown(self, trainer: "Trainer") -> None:
        run, self.run, self._trainer = self.run, None, None
        if run is None:
            return
        self.sink.detach()
        failed = trainer.stop_reason is not None and trainer.stop_reason.kind == "exception"
        offline = run.settings.mode == "offline"
        roots = [Path(run.settings.sync_dir).parent, *self._earlier_wandb_dir(trainer)]
        run.finish(exit_code=1 if failed else 0)
        if offline:
            self.sync_command = sync_command(roots, self.run_id)
            self.say(f"wandb: offline run {self.run_id}; to upload it: {self.sync_command}")

    def _earlier_wandb_dir(self, trainer: "Trainer") -> list[Path]:
        """The W&B dir of the run dir resumed from, when that is another one (a previous Kaggle session's output)."""
        if self.dir is not None or trainer.resumed_from is None:
            return []
        earlier = Path(trainer.resumed_from.path).parent.parent / "wandb"
        return [earlier] if earlier.resolve() != (Path(trainer.run_dir) / "wandb").resolve() else []

    def _config(self, trainer: "Trainer") -> dict[str, Any]:
        settings = {
            "max_steps": trainer.max_steps,
            "steps_per_call": trainer.steps_per_call,
            "seed": trainer.seed,
            "run_dir": str(trainer.run_dir),
            "checkpoint_dir": str(trainer.checkpoint_dir),
        }
        return {"task": task_config(trainer.task), "trainer": settings, **self.config}


def api_key_from_kaggle_secrets(secret: str = "WANDB_API_KEY") -> bool:
    """Whether W&B has an API key: `WANDB_API_KEY` set, or (on Kaggle) copied into it from the notebook's secrets.

    A Kaggle notebook calls this before building a `WandbCallback`, and skips W&B (or
    runs it offline) when it returns False: no secret attached, or not on Kaggle.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        from kaggle_secrets import UserSecretsClient
    except ImportError:
        return False
    try:
        key = UserSecretsClient().get_secret(secret)
    except Exception as err:  # Kaggle raises its own error types when no such secret is attached
        log.info("wandb: no Kaggle secret %r (%s): W&B is skipped", secret, type(err).__name__)
        return False
    if not key:
        return False
    os.environ["WANDB_API_KEY"] = key
    return True


def new_run_id(length: int = 8) -> str:
    """A fresh W&B run id (lowercase letters and digits, as W&B makes them)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def offline_run_dirs(wandb_dir: Path | Sequence[Path], run_id: str) -> list[Path]:
    """The offline session directories of `run_id` under `wandb_dir` (or several), oldest first.

    Their names start with the session's start time, then the run id and, for a second
    session started within the same second, `-1`, `-2`, ...
    """
    roots = [wandb_dir] if isinstance(wandb_dir, Path) else list(dict.fromkeys(wandb_dir))
    pattern = re.compile(rf"offline-run-(\d{{8}}_\d{{6}})-{re.escape(run_id)}(?:-(\d+))?")
    found = [
        (match, path)
        for root in roots
        for path in root.glob("offline-run-*")
        if (match := pattern.fullmatch(path.name))
    ]
    return [path for match, path in sorted(found, key=lambda m: (m[0][1], int(m[0][2] or 0)))]


def sync_command(wandb_dir: Path | Sequence[Path], run_id: str) -> str:
    """The `wandb sync` line that uploads every offline session of `run_id` (W&B syncs them in order, as one run)."""
    dirs = offline_run_dirs(wandb_dir, run_id)
    return "wandb sync " + " ".join(_quote(str(path)) for path in dirs)


def _quote(text: str) -> str:
    return text if re.fullmatch(r"[\w./@%+=:,-]+", text) else "'" + text.replace("'", "'\\''") + "'"


def _sink_is_used(trainer: "Trainer", sink: WandbSink) -> bool:
    """Whether some callback (a `LogThrottleCallback`) lists `sink` among its `sinks`."""
    return any(sink in (getattr(callback, "sinks", None) or ()) for callback in trainer.callbacks)
