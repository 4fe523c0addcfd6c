"""Provider API keys: from the environment locally, from SSM Parameter Store in AWS."""
from __future__ import annotations

from .base import ProviderNotConfigured


def resolve(provider: str, value: str | None, parameter: str | None, variable: str) -> str:
    if value:
        return value
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        try:
            key = parameters.get_parameter(parameter, decrypt=True, max_age=300)
        except Exception as exc:  # missing parameter, no permission, SSM unreachable
            reason = "it does not exist" if "ParameterNotFound" in str(exc) else f"{exc.__class__.__name__}: {str(exc)[:200]}"
            raise ProviderNotConfigured(
                f"provider {provider} is not configured: no {variable}, and the SSM parameter {parameter} cannot be read ({reason})"
            ) from None
        if key:
            return str(key)
    raise ProviderNotConfigured(f"provider {provider} is not configured here (no {variable})")
