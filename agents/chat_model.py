"""The one place chat models are built (tests patch `build_chat_model`)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from state.config import ConfigError, Settings
from state.models import LLMUsage

if TYPE_CHECKING:  # only the LLM supervisor builds a model: a read imports no model stack
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage


def require_llm_settings(settings: Settings) -> None:
    """Fail early, with a clear message, when the LLM supervisor cannot run."""
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value():
        raise ConfigError(
            "the llm and hybrid supervisors need OPENAI_API_KEY (and OPENAI_BASE_URL for an "
            "OpenAI-compatible server); or run with --supervisor rules"
        )


def build_chat_model(settings: Settings) -> BaseChatModel:
    """`ChatOpenAI` from the settings: model, key, base URL, timeout, retries with backoff.

    The OpenAI client retries 429, 5xx and timeouts itself (exponential backoff,
    honouring Retry-After) up to `llm_max_retries` times; what still fails is
    raised to the supervisor node, whose error handler sends the thread to review.
    """
    from langchain_openai import ChatOpenAI

    require_llm_settings(settings)
    kwargs: dict[str, Any] = {
        "model": settings.llm_model,
        "api_key": settings.openai_api_key,
        "timeout": settings.llm_timeout_seconds,
        "max_retries": settings.llm_max_retries,
        "temperature": 0,
    }
    if settings.openai_base_url:
        kwargs["base_url"] = settings.openai_base_url
    return ChatOpenAI(**kwargs)


def usage_of(message: AIMessage, settings: Settings) -> LLMUsage:
    """Tokens and estimated cost of one model answer (from its usage metadata)."""
    meta: dict[str, Any] = dict(message.usage_metadata or {})
    prompt = int(meta.get("input_tokens", 0))
    completion = int(meta.get("output_tokens", 0))
    cost = (Decimal(prompt) * settings.llm_price_input_per_mtok
            + Decimal(completion) * settings.llm_price_output_per_mtok) / Decimal(1_000_000)
    return LLMUsage(calls=1, prompt_tokens=prompt, completion_tokens=completion,
                    cost_usd=cost.quantize(Decimal("0.000001")))
