"""Running real kubectl binaries against the test server and reading what they print.

Every subprocess gets a bounded timeout so that a server that never answers (or a watch that
never ends) fails the test instead of hanging CI.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The binaries the issue asks for: the oldest and newest pinned kubectl, and the gcloud dispatcher
# that picks a kubectl matching the server's version.
KUBECTL_NAMES = ("kubectl.1.27", "kubectl.1.33", "kubectl")
COMMAND_TIMEOUT = 60.0
MANIFESTS = Path(__file__).resolve().parent / "manifests"

# kubectl's tabwriter pads columns with at least three spaces, while a few headers
# ("NOMINATED NODE") hold a single one.
_COLUMN_GAP = re.compile(r"\s{2,}")


def binary_label(binary: str) -> str:
    """A DNS-label-safe tag for a binary, used to keep each run's namespaces apart."""
    return re.sub(r"[^a-z0-9]+", "-", Path(binary).name.lower()).strip("-")


@dataclass(frozen=True)
class Kubectl:
    """One kubectl binary bound to the test server's kubeconfig."""

    binary: str
    env: Mapping[str, str]

    @property
    def name(self) -> str:
        return Path(self.binary).name

    def run(
        self,
        *args: str,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        merged = {**self.env, **(env or {})}
        result = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=merged,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(describe(result))
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(self.env),
        )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(str(arg) for arg in result.args)
    return f"`{command}` exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of one kubectl table, keyed by header; cells are located by the header's columns.

    Splitting rows on whitespace would shift every cell after an empty one (a resource without
    SHORTNAMES), so each cell is cut at the offsets where the header's columns start.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = _COLUMN_GAP.split(header.strip())
    assert len(starts) == len(names), f"cannot read table header {header!r}"
    rows = []
    for line in lines[1:]:
        cells = {}
        for i, name in enumerate(names):
            end = starts[i + 1] if i + 1 < len(names) else None
            cells[name] = line[starts[i] : end].strip()
        rows.append(cells)
    return rows


def parse_tables(text: str) -> list[list[dict[str, str]]]:
    """The tables of a multi-type `kubectl get a,b`, which kubectl separates with blank lines."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return [parse_table(block) for block in blocks if block.strip()]


def headers(text: str) -> list[str]:
    first = next(line for line in text.splitlines() if line.strip())
    return _COLUMN_GAP.split(first.strip())


def row_named(rows: Sequence[Mapping[str, str]], name: str) -> Mapping[str, str]:
    for row in rows:
        if row.get("NAME") == name:
            return row
    raise AssertionError(f"no row named {name!r} in {list(rows)}")


@dataclass
class LineReader:
    """Collects a long-running process's stdout lines on a thread so reads can time out."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            if predicate(line):
                return line
        stderr = ""
        if self.process.poll() is not None and self.process.stderr is not None:
            stderr = self.process.stderr.read()
        raise AssertionError(f"no matching line within {timeout}s; saw {self.seen!r}; stderr {stderr!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=COMMAND_TIMEOUT)


def eventually(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Polls a condition that a server-side controller makes true in its own time.

    The checks here mostly run kubectl, ~0.2 s of CPU a call (plus the server's share): polled
    back to back every 0.1 s, a wait of several seconds (a node going Unknown, a toleration running
    out) kept a core busy that the server under test, and the other test worker, need. The pause
    starts at 0.1 s and grows by half each time up to 0.5 s, so a condition met at once is still
    seen at once and a long wait costs a third of the CPU; the deadline is unchanged."""
    deadline = time.monotonic() + timeout
    pause = 0.1
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)
    raise AssertionError(f"{what} not met within {timeout}s")
