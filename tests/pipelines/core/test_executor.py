"""The one executor: same results in order from every implementation, failures named, dead workers retried."""

from __future__ import annotations

import os

import pytest

from pipelines.core.executor import (
    LocalExecutor,
    ProcessExecutor,
    RayExecutor,
    TaskFailed,
    forwarded_env,
    get_executor,
)


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def _touch_and_square(args: tuple[str, int]) -> int:
    folder, x = args
    if x == 3:
        raise ValueError("three is not allowed")
    open(os.path.join(folder, f"{x}.done"), "w").close()
    return x * x


def _die_once(args: tuple[str, int]) -> int:
    """Kills its worker process the first time it sees item 2 (as the OOM killer would)."""
    folder, x = args
    flag = os.path.join(folder, f"died-{x}")
    if x == 2 and not os.path.exists(flag):
        open(flag, "w").close()
        os._exit(9)
    return x + 100


@pytest.mark.parametrize("make", [LocalExecutor, lambda: ProcessExecutor(2)])
def test_results_in_order_and_every_failure_named_after_all_items_ran(tmp_path, make):
    ex = make()
    assert ex.map(_square_or_fail, [5, 1, 4, 2]) == [25, 1, 16, 4]
    with pytest.raises(TaskFailed) as err:
        ex.map(_touch_and_square, [(str(tmp_path), x) for x in range(6)], "squares")
    assert "squares: 1 item(s) failed" in str(err.value)
    assert "3)" in str(err.value) and "ValueError: three is not allowed" in str(err.value)
    assert isinstance(err.value.__cause__, ValueError)
    assert sorted(os.listdir(tmp_path)) == [f"{x}.done" for x in (0, 1, 2, 4, 5)]  # the others still ran


def test_a_dead_worker_process_is_replaced_and_its_item_rerun(tmp_path):
    out = ProcessExecutor(2).map(_die_once, [(str(tmp_path), x) for x in range(5)], "dying")
    assert out == [100, 101, 102, 103, 104]
    assert os.path.exists(tmp_path / "died-2")  # it did die once


def test_get_executor_by_name_and_errors():
    assert get_executor("local").name == "local"
    assert get_executor("process", 3).workers == 3
    ex = LocalExecutor()
    assert get_executor(ex) is ex
    with pytest.raises(ValueError, match="local, process, ray"):
        get_executor("spark")


def test_ray_options_spread_retries_and_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-for-workers")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcs.json")
    monkeypatch.setenv("UNRELATED_SECRET", "stays here")
    opts = RayExecutor(max_retries=5).options()
    assert opts["scheduling_strategy"] == "SPREAD" and opts["max_retries"] == 5
    assert opts["retry_exceptions"] == [OSError]  # store and disk errors are retried; a task's own error is not
    env = opts["runtime_env"]["env_vars"]
    assert (
        env["AWS_ACCESS_KEY_ID"] == "key-for-workers"
        and env["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/gcs.json"
    )
    assert "UNRELATED_SECRET" not in env
    monkeypatch.setenv("WINNOW_FORWARD_STORAGE_ENV", "0")
    assert forwarded_env() == {} and "runtime_env" not in RayExecutor().options()


def test_ray_executor_runs_tasks_with_the_credentials_and_names_failures(ray_local, monkeypatch):
    import math

    # functions of the standard library: Ray workers import them by name (test modules are not on their path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-for-workers")
    ex = RayExecutor(progress=False)
    assert ex.map(os.getenv, ["AWS_ACCESS_KEY_ID", "UNSET_EVERYWHERE"]) == ["key-for-workers", None]
    assert ex.map(math.sqrt, [16, 0, 1]) == [4.0, 0.0, 1.0]
    with pytest.raises(TaskFailed, match="math domain error") as err:
        ex.map(math.sqrt, [1, -1, 4], "ray roots")
    assert "ray roots: 1 item(s) failed" in str(err.value) and "  -1: " in str(err.value)
