import itertools

import pytest

from jobsvc import states

# The contract's table (api-contract.md section 2), written out independently.
CONTRACT = {
    "created": {"pending", "cancelled", "expired"},
    "pending": {"running", "cancelled", "expired"},
    "running": {"completed", "failed", "cancelled"},
    "completed": set(), "failed": set(), "cancelled": set(), "expired": set(),
}


def test_table_is_the_contracts():
    assert {k: set(v) for k, v in states.TRANSITIONS.items()} == CONTRACT


@pytest.mark.parametrize("source,target", itertools.product(CONTRACT, CONTRACT))
def test_every_pair(source, target):
    assert states.can_transition(source, target) == (target in CONTRACT[source])


def test_terminal_and_active():
    assert states.TERMINAL == {"completed", "failed", "cancelled", "expired"}
    assert states.ACTIVE == {"created", "pending", "running"}


def test_allowed_current_statuses_of_an_update():
    # no status: any non-terminal job takes the update
    assert states.allowed_current(None) == {"created", "pending", "running"}
    # a non-terminal target also accepts a job already there (not a transition)
    assert states.allowed_current("running") == {"pending", "running"}
    assert states.allowed_current("pending") == {"created", "pending"}
    assert states.allowed_current("created") == {"created"}
    # a terminal target only from its sources: the write never touches a terminal job
    assert states.allowed_current("completed") == {"running"}
    assert states.allowed_current("cancelled") == {"created", "pending", "running"}
    assert states.allowed_current("expired") == {"created", "pending"}


def test_markdown_table_lists_every_status():
    text = states.table_markdown()
    for status in CONTRACT:
        assert f"| `{status}` |" in text
    assert "| `running` | `completed`, `failed`, `cancelled` |" in text


def test_a_history_follows_the_state_machine_whatever_the_writers_clocks_said():
    """A sweep stamps its transition with a time taken before a user's write that landed
    first (or another instance's clock is behind): the history still reads in the order the
    job went, each entry coming from the one before."""
    from jobsvc.jobs import history_to_public

    history = {
        "created": ["2026-11-29T10:00:00Z", "user:u", None],
        "pending": ["2026-11-29T10:00:05Z", "user:u", None],
        "expired": ["2026-11-29T10:00:04Z", "system:sweep", "timeout"],  # stamped earlier, written later
    }
    entries = history_to_public(history)
    assert [(e["from"], e["status"]) for e in entries] == [(None, "created"), ("created", "pending"), ("pending", "expired")]
