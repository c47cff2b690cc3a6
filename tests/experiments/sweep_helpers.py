"""A toy recipe for the sweep engine's fault tests: runs that sleep, and optionally kill
their own worker process on the first attempt (a marker file remembers the attempt)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass

from hmmtune.experiments.sweep import Recipe


@dataclass(frozen=True)
class SleepConfig:
    x: int
    seconds: float = 0.0
    kill_marker: str = ""  # if set and the file is missing: create it, then SIGKILL this process ("always": every time)

    num_tokens = 10

    @property
    def label(self) -> str:
        return f"x{self.x}"

    def to_dict(self) -> dict:
        return asdict(self)


def config_from_dict(d: dict) -> SleepConfig:
    return SleepConfig(**d)


def plan(quick: bool = False, truncate: bool = False) -> list:
    return [SleepConfig(x) for x in (1, 2)]


def run_one(config: SleepConfig, seed: int, ctx) -> dict:
    if config.kill_marker == "always":
        os.kill(os.getpid(), signal.SIGKILL)
    if config.kill_marker:
        try:  # claim the marker atomically: two runs of the config may start at once
            fd = os.open(config.kill_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)  # a worker dies mid-run
    time.sleep(config.seconds)
    return {"a": {"test": (config.x * 7 + seed) % 10 / 10}}


RECIPE = Recipe(
    name="sleepy",
    title="toy sweep",
    methods={"a": "method a"},
    published={},
    x_label="x",
    x_short="x",
    plan=plan,
    config_from_dict=config_from_dict,
    run_one=run_one,
)
