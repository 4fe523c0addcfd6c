"""What the end-to-end tests share besides fixtures: now ``tests.contract`` (the contract's state
machine, id helpers), kept importable under this name."""
from tests.contract import ACTIVE, PATHS, STATUSES, TERMINAL, TRANSITIONS, shift_id, unique  # noqa: F401
