"""Shared fixtures: a real tritonserver on free ports, serving a copy of model_repository whose
networks were installed by the project's own `export.engine` from the shipped checkpoints (the
exports committed beside them, or build/onnx_cache, are copied while checkpoint and graph source
are unchanged; otherwise they are exported). Tests that need
a server of their own (other limits, one to kill) copy only the tasks they use. Tiny test networks
are seeded and saved under fixed names, so their exports are cached as well."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient

from benchmarks.procstat import cpu_seconds_each
from benchmarks.stub_cpu import stub_pids
from client.local_server import ADMIN_HEADER, TritonServer
from export.repository import CHECKPOINTS, build_repository, served_tasks
from export.triton_config import WindowOptions, update_parameters

# Short, so reaping is tested in seconds; long enough for a slow frame on a loaded 2-core machine
# (at 6 s, a 352x288 stream was reaped mid-file twice on 2026-12-05 under a load average of 5-9:
# `make test` runs two workers, each with its servers).
TEST_IDLE_TIMEOUT_S = 10
# Slowest export first, from a cold cache on the idle 2-core machine: inpaint about 100 s (its
# propagation), denoise 36 s (its flow), deblur 15 s, sr4 3-5 s (2026-12-05).
EXPORT_ORDER = ("inpaint", "denoise", "deblur", "sr4")
# Sequences a test left open would otherwise hold a stopping server for Triton's default 30 s.
EXIT_TIMEOUT = ("--exit-timeout-secs", "3")
SHIPPED_EXPORTS = "shipped_exports"


def exports_needed(item: pytest.Item, served: set[str]) -> set[str]:
    """The shipped networks whose exports `item` waits for: every one of `served` for a test
    using the session's repository or a `shipped_export` fixture, else those its
    `shipped_exports` mark names."""
    if {"served_repository", "shipped_export"} & set(item.fixturenames):
        return served
    return {task for mark in item.iter_markers(SHIPPED_EXPORTS) for task in mark.args}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order test files for `make test` (pytest-xdist --dist loadfile --no-loadscope-reorder: a
    worker takes the next file in this order when it has two or fewer tests left). When the
    exports committed beside the shipped checkpoints are stale (a checkpoint or the graph source
    changed) and build/onnx_cache lacks them, the shipped networks' exports take about three
    minutes of one core, inpaint's two of them, and a test waits for the exports it needs (`exports_needed`). So the largest file
    using the session's repository goes first, and its worker starts with inpaint's export at
    once; the other worker runs the files that need no export, then those that need some
    exports only (it makes what they need: most exports first, inpaint's last), and reaches the
    files that need every export after them. Largest files first within each group."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    everything = set(served_tasks())
    needs = {name: set().union(*(exports_needed(t, everything) for t in tests)) for name, tests in files.items()}
    by_size = sorted(files, key=lambda name: len(files[name]), reverse=True)
    serving = [name for name in by_size if any("served_repository" in t.fixturenames for t in files[name])]
    first = serving[:1]
    waiting = [name for name in by_size if needs[name] == everything and name not in first]
    free = [name for name in by_size if not needs[name]]
    fast = sorted((name for name in by_size if needs[name] and needs[name] != everything),
                  key=lambda name: (EXPORT_ORDER[0] in needs[name], -len(needs[name]), -len(files[name])))
    items[:] = [item for name in first + free + fast + waiting for item in files[name]]


class KilledOnStop(TritonServer):
    """Stopped by a kill (stubs included) and its shared memory removed, not by Triton's graceful
    shutdown, which polls its models' unloading once a second: 2-3 s a server, a dozen servers a
    run."""

    def stop(self, timeout_s: float = 30) -> None:
        self.kill()
        self.remove_shared_memory()


def start_server(repository: Path, log: Path, graceful: bool = False) -> TritonServer:
    """A TritonServer for tests: stops within seconds whatever streams were left open, killed
    on stop unless `graceful` (the session's servers are stopped gracefully)."""
    return (TritonServer if graceful else KilledOnStop)(repository, log, extra_args=EXIT_TIMEOUT)


@pytest.fixture(scope="session")
def served_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tasks = served_tasks()
    if not tasks:
        pytest.fail(f"no checkpoint in {CHECKPOINTS} has a model_repository entry")
    # Each pytest-xdist worker builds its own copy. With an empty build/onnx_cache (a fresh clone)
    # the first worker starts with the slowest export and the second goes the other way round, so
    # the two export about half the work each and copy the rest from the cache
    # (export.onnx_cache.exclusive) rather than both exporting all of them.
    tasks = sorted(tasks, key=lambda t: EXPORT_ORDER.index(t) if t in EXPORT_ORDER else len(EXPORT_ORDER))
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        tasks = tasks[::-1]
    return build_repository(tmp_path_factory.mktemp("model_repository"), tasks,
                            WindowOptions(idle_timeout_s=TEST_IDLE_TIMEOUT_S))


@pytest.fixture(scope="session")
def triton_server(served_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real tritonserver for the session (tests that kill servers start their own)."""
    log = tmp_path_factory.mktemp("logs") / "tritonserver.log"
    with start_server(served_repository, log, graceful=True) as server:
        yield server


def task_repository(dest: Path, tasks: list[str], max_side: int | None = None,
                    engine_args: tuple[str, ...] = ()) -> Path:
    """A repository of `tasks` alone (`build_repository`, so only their exports are waited for or
    made; more `export.engine` flags in `engine_args`), window models reaping as the session's do,
    with the max_side parameter of their window models and networks set to `max_side` if given.
    Tests using it mark the tasks they need `shipped_exports`."""
    build_repository(dest, tasks, WindowOptions(idle_timeout_s=TEST_IDLE_TIMEOUT_S), engine_args=engine_args)
    if max_side is not None:  # the window model's limit and the network's (the client reads the first)
        for task in tasks:
            for model in (f"{task}_window", f"{task}_net"):
                update_parameters(dest / model / "config.pbtxt", {"max_side": max_side})
    return dest


def task_server(folder: Path, tasks: list[str], max_side: int | None = None,
                engine_args: tuple[str, ...] = ()) -> TritonServer:
    """A test server (`start_server`, started by `with`) of `task_repository(folder / "repository",
    tasks, max_side, engine_args)`, logging to folder / "tritonserver.log"."""
    return start_server(task_repository(folder / "repository", tasks, max_side, engine_args),
                        folder / "tritonserver.log")


def instance_cpu_seconds(server: TritonServer, model: str) -> dict[int, float]:
    """CPU seconds used so far by each instance (Python-backend stub process) of `model`."""
    return cpu_seconds_each(stub_pids(server.process.pid, model))


def instances_that_ran(before: dict[int, float], after: dict[int, float], min_s: float = 0.03) -> int:
    """How many instances used more than `min_s` of CPU between two `instance_cpu_seconds`
    readings: an idle stub uses none (ONNX Runtime's threads do not spin)."""
    return sum(after[pid] - before.get(pid, 0.0) > min_s for pid in after)


def inference_counts(server: TritonServer, model: str, at_least: int = 0, timeout_s: float = 10.0,
                     settle_s: float = 0.5) -> tuple[int, int]:
    """(inferences, executions) of `model` so far: executions < inferences when batches formed
    (never on CPU, where a net takes one window per call in each of its instances).
    Waits up to `timeout_s` for the inference count to reach `at_least` and then to stay unchanged
    for `settle_s`: a network model's statistics are recorded after its response has gone back to
    the window model, so a client can hold its frames before they are counted (seen once under
    load: 10 of 18), and a count taken as a baseline right after other requests can still grow
    (seen once in CI: a baseline 7 short made 25 of 18)."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    deadline = time.monotonic() + timeout_s
    headers = {f"triton-grpc-protocol-{ADMIN_HEADER}": server.admin_key}

    def read() -> tuple[int, int]:
        stats = client.get_inference_statistics(model, headers=headers).model_stats[0]
        return stats.inference_count, stats.execution_count

    try:
        counts = read()
        while True:
            time.sleep(settle_s if counts[0] >= at_least else 0.1)
            now = read()
            if (now == counts and now[0] >= at_least) or time.monotonic() > deadline:
                return now
            counts = now
    finally:
        client.close()
