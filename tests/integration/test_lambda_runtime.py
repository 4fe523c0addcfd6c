"""Lambda instances of the local stack (local/lambdas.py) enforce what Lambda enforces: the 6 MB
payload quota on the event and on the answer (measured on their JSON, as Lambda measures it),
the function's Timeout (the instance is killed), and a killed instance fails its invocation."""
from __future__ import annotations

import json
from typing import Iterator

import pytest

from local.faults import FaultInjector, FaultSpec
from local.lambdas import SYNC_PAYLOAD_BYTES, FunctionError, LocalFunction, RequestTooLarge

from .local_support import fixture_function, read_log


@pytest.fixture
def functions(tmp_path, monkeypatch) -> Iterator:
    monkeypatch.setenv("FIXTURE_LOG", str(tmp_path / "log.jsonl"))  # inherited by the instances
    made: list[LocalFunction] = []

    def make(handler: str, **kwargs) -> LocalFunction:
        function = fixture_function(handler, **kwargs)
        made.append(function)
        return function

    yield make
    for function in made:
        function.stop()


def alive(function: LocalFunction) -> list:
    return [process for process, _ in function._all if process is not None and process.is_alive()]


def test_the_event_and_the_answer_travel_as_json(functions):
    echo = functions("echo")
    assert echo.invoke({"tuple": (1, 2), "text": "héllo"}) == {"tuple": [1, 2], "text": "héllo"}


def test_an_event_over_6_mb_is_refused_before_the_function_runs(functions, tmp_path):
    echo = functions("echo")
    envelope = len(json.dumps({"s": ""}))  # {"s": ""}: what surrounds the string
    assert echo.invoke({"s": "x" * (SYNC_PAYLOAD_BYTES - envelope)})["s"][:1] == "x"  # exactly 6 MB: fine
    with pytest.raises(RequestTooLarge) as raised:
        echo.invoke({"s": "x" * (SYNC_PAYLOAD_BYTES - envelope + 1)})
    assert raised.value.error_type == "RequestTooLargeException"
    # measured in UTF-8 bytes, as Lambda does: 'é' is two of them
    with pytest.raises(RequestTooLarge):
        echo.invoke({"s": "é" * (SYNC_PAYLOAD_BYTES // 2)})
    assert len(read_log(tmp_path / "log.jsonl")) == 1, "a refused event reached the function"


def test_an_answer_over_6_mb_is_a_function_error(functions):
    big = functions("answer_of_size")
    assert len(big.invoke({"bytes": SYNC_PAYLOAD_BYTES})) == SYNC_PAYLOAD_BYTES - 2
    with pytest.raises(FunctionError) as raised:
        big.invoke({"bytes": SYNC_PAYLOAD_BYTES + 1})
    assert raised.value.error_type == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in raised.value.message


def test_an_answer_that_is_not_json_is_a_function_error(functions):
    with pytest.raises(FunctionError) as raised:
        functions("unserialisable").invoke({})
    assert raised.value.error_type == "Runtime.MarshalError"


def test_a_function_that_raises_is_a_function_error_and_its_instance_lives_on(functions):
    fail = functions("fail")
    with pytest.raises(FunctionError) as raised:
        fail.invoke({"n": 1})
    assert (raised.value.error_type, raised.value.message) == ("RuntimeError", "boom")
    assert len(alive(fail)) == 1


def test_past_its_timeout_an_invocation_fails_and_its_instance_is_killed(functions):
    slow = functions("sleep", timeout=1)
    with pytest.raises(FunctionError) as raised:
        slow.invoke({"seconds": 30})
    assert raised.value.error_type == "Sandbox.Timedout"
    assert raised.value.message == "Task timed out after 1.00 seconds"
    assert alive(slow) == [] and slow._all == [], "the timed-out instance was kept"
    assert slow.invoke({"seconds": 0}) == "slept"  # a new instance (a cold start) takes the next event


def killing(rate: float, seed: int) -> FaultInjector:
    injector = FaultInjector(FaultSpec(kill=rate, seed=seed))
    injector.armed = True
    return injector


def test_kill_faults_kill_that_fraction_of_invocations_reproducibly(functions, tmp_path):
    echo = functions("echo", faults=killing(0.3, seed=11))
    outcomes = []
    for i in range(40):
        try:
            echo.invoke({"n": i})
            outcomes.append("ok")
        except FunctionError as exc:
            assert (exc.error_type, exc.message) == ("Runtime.ExitError", "Runtime exited with error: signal: killed")
            outcomes.append("killed")
    # the same decisions as a fresh injector with the same seed draws
    expected = killing(0.3, seed=11)
    assert outcomes == ["killed" if expected.kill_after() is not None else "ok" for _ in range(40)]
    assert 4 <= outcomes.count("killed") <= 24
    # every killed invocation lost its instance; the others answered in full
    assert len(alive(echo)) <= 1
    answered = [entry["n"] for entry in read_log(tmp_path / "log.jsonl")]
    assert all(i in answered for i, outcome in enumerate(outcomes) if outcome == "ok")


def test_kill_faults_are_off_until_the_stack_is_armed(functions):
    injector = FaultInjector(FaultSpec(kill=1.0))
    echo = functions("echo", faults=injector)
    assert echo.invoke({"n": 1}) == {"n": 1}
    injector.armed = True
    with pytest.raises(FunctionError):
        echo.invoke({"n": 2})


def test_the_timeout_scale_stretches_the_functions_timeout(functions):
    spec = fixture_function("sleep", timeout=1).spec
    stretched = LocalFunction(spec, fixture_function("sleep").paths, timeout_scale=3)
    try:
        assert stretched.invoke({"seconds": 1.5}) == "slept"  # over 1 s, under 3 s
        with pytest.raises(FunctionError) as raised:
            stretched.invoke({"seconds": 30})
        assert raised.value.message == "Task timed out after 3.00 seconds"
    finally:
        stretched.stop()
