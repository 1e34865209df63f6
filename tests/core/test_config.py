import pytest

from raftkv.core import Config, InvalidConfig, MemoryLogStore, ReadOnlyOption, bootstrap


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": 0}, "id must be"),
        ({"id": 1, "heartbeat_ticks": 0}, "heartbeat_ticks"),
        ({"id": 1, "election_ticks": 1, "heartbeat_ticks": 1}, "election_ticks"),
        ({"id": 1, "max_inflight_msgs": 0}, "max_inflight_msgs"),
        ({"id": 1, "max_size_per_msg": -1}, "max_size_per_msg"),
        ({"id": 1, "max_uncommitted_entries_size": -1}, "max_uncommitted"),
        ({"id": 1, "max_committed_size_per_ready": -1}, "max_committed"),
        (
            {"id": 1, "check_quorum": False, "read_only": ReadOnlyOption.LEASE_BASED},
            "lease-based",
        ),
        ({"id": "1"}, "id must be int"),
        ({"id": True}, "id must be int"),
        ({"id": 1, "election_ticks": 10.0}, "election_ticks must be int"),
        ({"id": 1, "pre_vote": 1}, "pre_vote must be bool"),
        ({"id": 1, "read_only": "safe"}, "read_only must be ReadOnlyOption"),
    ],
)
def test_invalid_configs_are_refused_with_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        Config(**kwargs)


def test_defaults_are_valid() -> None:
    c = Config(id=3)
    assert c.election_ticks == 10 and c.heartbeat_ticks == 1
    assert c.pre_vote and c.check_quorum


@pytest.mark.parametrize(
    ("voters", "message"),
    [({}, "at least one voter"), ({0: b""}, "integers >= 1"), ({"1": b""}, "integers >= 1")],
)
def test_a_bootstrap_configuration_that_cannot_work_is_invalid(voters: dict, message: str) -> None:
    store = MemoryLogStore()
    with pytest.raises(InvalidConfig, match=message):
        bootstrap(store, voters)
    assert store.last_index() == 0  # nothing was written


def test_bootstrap_into_a_used_store_is_a_plain_value_error() -> None:
    """Not a configuration mistake (the configuration is fine, the store is the wrong one)."""
    store = MemoryLogStore()
    bootstrap(store, {1: b""})
    with pytest.raises(ValueError, match="empty log store") as info:
        bootstrap(store, {1: b""})
    assert not isinstance(info.value, InvalidConfig)


def test_invalid_config_is_a_value_error() -> None:
    """Callers that catch ValueError keep working."""
    with pytest.raises(ValueError):
        Config(id=0)
