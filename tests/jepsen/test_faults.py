"""The fault suite: real raftkvd processes in network namespaces, under every nemesis family.

CI runs ``test_family`` (a short run of each family, fixed seeds). A campaign
(``nox -s jepsen -- --nemesis ... --seconds S --runs N --seed S``) runs ``test_campaign`` once
per run, every chosen family composed in one schedule. Each run's problems are the checkers'
findings (``_checks``); the summary line names the seed and the results directory.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from jepsen._runner import RunConfig, RunResult, run_once
from jepsen.conftest import option

SHORT_SECONDS = 10.0
CI_SEEDS = {
    "partition": 101,
    "bridge": 202,
    "oneway": 303,
    "netem": 404,
    "pause": 505,
    "kill": 606,
    "churn": 707,
    "disk": 808,
}
# Three nodes keep CI short (bridge: 1 sees 2, 2 sees 3); a split of five has a 2-node minority.
CI_NODES = {"partition": 5}


def _families(config: pytest.Config) -> list[str] | None:
    from jepsen._runner import ALL_FAMILIES

    raw = option(config, "--nemesis")
    if not raw:
        return None
    families = ALL_FAMILIES if raw == "all" else [f.strip() for f in str(raw).split(",") if f]
    unknown = {f.partition(":")[0] for f in families} - set(ALL_FAMILIES)
    if unknown:
        raise pytest.UsageError(
            f"--nemesis: unknown families {sorted(unknown)}; known: {','.join(ALL_FAMILIES)}"
        )
    return families


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "campaign_run" in metafunc.fixturenames:
        runs = int(option(metafunc.config, "--runs", 1) or 1)  # type: ignore[arg-type]
        if _families(metafunc.config):
            metafunc.parametrize("campaign_run", range(runs), ids=[f"run{k}" for k in range(runs)])
        else:
            skip = pytest.mark.skip(reason="campaign runs need --nemesis (nox -s jepsen)")
            metafunc.parametrize("campaign_run", [pytest.param(0, marks=skip)], ids=["run0"])


def _workloads(config: pytest.Config) -> list[str]:
    from jepsen._workloads import WORKLOADS

    raw = str(option(config, "--workload", "register,set"))
    names = list(WORKLOADS) if raw == "all" else [w.strip() for w in raw.split(",") if w.strip()]
    unknown = set(names) - set(WORKLOADS)
    if unknown or not names:
        raise pytest.UsageError(
            f"--workload: unknown workloads {sorted(unknown)}; known: {','.join(WORKLOADS)}"
        )
    return names


def _run(
    results: Path,
    families: list[str],
    seconds: float,
    *,
    seed: int,
    tag: int,
    nodes: int = 5,
    workloads: list[str] | None = None,
) -> RunResult:
    config = RunConfig(families, seconds, seed, results, tag=tag, nodes=nodes)
    if workloads is not None:
        config.workloads = workloads
    result = run_once(config)
    print(result.summary())
    return result


def _assert_clean(result: RunResult, known_too: bool = False) -> None:
    found = result.problems + (result.known if known_too else [])
    assert not found, result.summary() + "\n" + "\n".join(found)


FAMILY_PARAMS = sorted(CI_SEEDS)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_family(
    family: str, netns_session: None, results_root: Path, request: pytest.FixtureRequest
) -> None:
    if _families(request.config):
        pytest.skip("a campaign run (--nemesis) replaces the short CI runs")
    result = _run(
        results_root,
        [family],
        SHORT_SECONDS,
        seed=CI_SEEDS[family],
        tag=CI_SEEDS[family],
        nodes=CI_NODES.get(family, 3),
    )
    injected = [w for w in result.history.windows if w.family == family]
    assert injected or result.history.skipped, result.summary()
    assert result.stats["ops"] > 200, result.summary()
    _assert_clean(result, known_too=True)


# The coordination workloads beside the register writers, each under the faults it is most
# about: a node killed under the watchers' streams; leases lost to pauses and partitions.
WORKLOAD_CASES = {
    "watch": (["kill:kill-one", "partition:isolate-leader"], 909, "event-ok"),
    "lock": (["pause:pause-leader", "partition:isolate-leader"], 1010, "lwrite-ok"),
}


@pytest.mark.parametrize("workload", sorted(WORKLOAD_CASES))
def test_workload(
    workload: str, netns_session: None, results_root: Path, request: pytest.FixtureRequest
) -> None:
    if _families(request.config):
        pytest.skip("a campaign run (--nemesis) replaces the short CI runs")
    families, seed, kind = WORKLOAD_CASES[workload]
    result = _run(
        results_root,
        families,
        SHORT_SECONDS,
        seed=seed,
        tag=seed,
        nodes=3,
        workloads=["register", workload],
    )
    assert result.history.windows, result.summary()
    assert result.stats["by_kind"].get(kind, 0) > 10, result.summary()  # type: ignore[attr-defined]
    _assert_clean(result, known_too=True)


def test_campaign(
    campaign_run: int, netns_session: None, results_root: Path, request: pytest.FixtureRequest
) -> None:
    families = _families(request.config)
    assert families
    first = option(request.config, "--seed")
    seed = (int(first) if first is not None else random.randrange(1 << 30)) + campaign_run  # type: ignore[arg-type]
    seconds = float(option(request.config, "--seconds", 60.0))  # type: ignore[arg-type]
    nodes = int(option(request.config, "--nodes", 5))  # type: ignore[arg-type]
    workloads = _workloads(request.config)
    result = _run(
        results_root,
        families,
        seconds,
        seed=seed,
        tag=campaign_run,
        nodes=nodes,
        workloads=workloads,
    )
    _assert_clean(result)
