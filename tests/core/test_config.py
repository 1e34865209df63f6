import pytest

from raftkv.core import Config, InvalidConfig, ReadOnlyOption


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
    ],
)
def test_invalid_configs_are_refused_with_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        Config(**kwargs)


def test_defaults_are_valid() -> None:
    c = Config(id=3)
    assert c.election_ticks == 10 and c.heartbeat_ticks == 1
    assert c.pre_vote and c.check_quorum
