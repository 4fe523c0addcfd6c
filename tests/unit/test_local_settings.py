"""The local stack's settings (local/settings.py) and what the template gives the local gateway."""
from __future__ import annotations

import pytest

from local.faults import FaultSpec
from local.settings import LocalSettings, parse_parameters
from local.template import Template


def test_defaults_are_those_of_the_readme():
    settings = LocalSettings.from_env({})
    assert settings.transaction_seconds == 0.02
    assert settings.index_lag_seconds == 0.0
    assert settings.faults == FaultSpec() and not settings.faults.active
    assert settings.timeout_scale == 1.0 and settings.parameters == {}


def test_every_setting_is_read():
    settings = LocalSettings.from_env({
        "LOCAL_TRANSACTION_CONFLICT_MS": "0", "LOCAL_INDEX_LAG_MS": "150", "LOCAL_TIMEOUT_SCALE": "2.5",
        "LOCAL_FAULTS": "dynamodb=0.05,sqs=0.1,kill=0.02,seed=7", "LOCAL_PARAMETERS": "AuthorizerCacheSeconds=0, LogLevel=DEBUG",
    })
    assert settings.transaction_seconds == 0 and settings.index_lag_seconds == 0.15 and settings.timeout_scale == 2.5
    assert settings.faults == FaultSpec(dynamodb=0.05, sqs=0.1, kill=0.02, seed=7)
    assert settings.parameters == {"AuthorizerCacheSeconds": "0", "LogLevel": "DEBUG"}


@pytest.mark.parametrize("spec", ["dynamo=0.1", "dynamodb=2", "dynamodb", "kill=-0.1", "seed=x"])
def test_a_malformed_fault_spec_is_refused(spec):
    with pytest.raises(ValueError):
        FaultSpec.parse(spec)


def test_malformed_settings_are_refused():
    with pytest.raises(ValueError):
        parse_parameters("AuthorizerCacheSeconds")
    with pytest.raises(ValueError):
        LocalSettings.from_env({"LOCAL_INDEX_LAG_MS": "-5"})


def test_the_gateway_gets_the_authorizers_identity_source_and_cache_from_the_template():
    protected = [r for r in Template().routes() if r.authorizer]
    assert protected and {(r.authorizer.identity_headers, r.authorizer.cache_seconds) for r in protected} == {(("authorization",), 60)}
    overridden = [r for r in Template({"AuthorizerCacheSeconds": "0"}).routes() if r.authorizer]
    assert {r.authorizer.cache_seconds for r in overridden} == {0}
