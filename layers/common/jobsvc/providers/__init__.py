"""LLM provider batch APIs behind one small interface (submit, retrieve, cancel, results)."""
from __future__ import annotations

from .base import (
    ENDED, FAILED, PROCESSING, Provider, ProviderBatch, ProviderError, ProviderNotConfigured,
    ProviderRefused, Result,
)

NAMES = ("anthropic", "openai", "simulated")


def get(name: str) -> Provider:
    """The adapter for a provider name (raises ProviderNotConfigured if it has no key)."""
    if name == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider.from_settings()
    if name == "openai":
        from .openai import OpenAIProvider

        return OpenAIProvider.from_settings()
    if name == "simulated":
        from .simulated import SimulatedProvider

        return SimulatedProvider()
    raise ProviderNotConfigured(f"unknown provider {name!r}")


__all__ = [
    "ENDED", "FAILED", "NAMES", "PROCESSING", "Provider", "ProviderBatch", "ProviderError",
    "ProviderNotConfigured", "ProviderRefused", "Result", "get",
]
