"""LLM provider batch APIs behind one small interface (submit, retrieve, cancel, results)."""
from __future__ import annotations

from .base import (
    ENDED, FAILED, PROCESSING, Guarded, Provider, ProviderBatch, ProviderError, ProviderNotConfigured,
    ProviderRefused, Result,
)


def get(name: str) -> Provider:
    """The adapter for a provider name (raises ProviderNotConfigured if it has no key).

    Every failure of the adapter it returns is a ProviderError (see ``Guarded``).
    """
    if name == "anthropic":
        from .anthropic import AnthropicProvider

        return Guarded(AnthropicProvider.from_settings())
    if name == "openai":
        from .openai import OpenAIProvider

        return Guarded(OpenAIProvider.from_settings())
    if name == "simulated":
        from ..config import settings
        from .simulated import SimulatedProvider

        if not settings().simulated_provider:
            raise ProviderNotConfigured("the simulated provider is switched off in this deployment")

        return Guarded(SimulatedProvider())
    raise ProviderNotConfigured(f"unknown provider {name!r}")


__all__ = [
    "ENDED", "FAILED", "PROCESSING", "Provider", "ProviderBatch", "ProviderError",
    "ProviderNotConfigured", "ProviderRefused", "Result", "get",
]
