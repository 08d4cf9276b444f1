"""Model calls and tokens per deal for the `llm` and `hybrid` supervisors (scripted model).

Tokens are estimated from the real prompts (system prompt, tool schemas, facts,
history) at ~4 characters a token. Run: `python -m tests.integration.llm_usage`.
"""

from __future__ import annotations

import sys
import uuid

from pydantic import SecretStr

from agents import chat_model
from dealflow.api import DealService
from state.config import Settings
from tests.fakes import ScriptedChatModel
from tests.helpers import make_deal
from tests.llm_script import sensible

DEALS = (("small", "12000.00"), ("large", "60000.00"))


def measure(url: str) -> list[tuple[str, str, dict[str, object]]]:
    """Run each deal in each mode to completion; return the usage per deal."""
    rows = []
    for mode in ("llm", "hybrid"):
        model = ScriptedChatModel(policy=sensible, estimate_tokens=True)
        chat_model.build_chat_model = lambda settings, model=model: model  # type: ignore[misc]
        settings = Settings(database_url=url, supervisor=mode,
                            openai_api_key=SecretStr("sk-scripted"))
        with DealService(settings) as service:
            for name, value in DEALS:
                deal_id = f"{mode}-{name}-{uuid.uuid4().hex[:6]}"
                report = service.start(make_deal(deal_id, value))
                if report.status == "waiting_review":
                    report = service.resume(deal_id, "approve")
                report = service.event(deal_id, "signature.completed")
                assert report.status == "completed", report.status
                rows.append((mode, f"{name} ({value} USD)", report.usage))
    return rows


def main() -> int:
    """Print the table on a throwaway database."""
    from bench.common import throwaway_database

    with throwaway_database() as url:
        rows = measure(url)
    print(f"{'mode':<8} {'deal':<22} {'calls':>5} {'prompt tok':>10} {'completion tok':>14} "
          f"{'est. cost USD':>13}")
    for mode, deal, usage in rows:
        print(f"{mode:<8} {deal:<22} {usage['calls']:>5} {usage['prompt_tokens']:>10} "
              f"{usage['completion_tokens']:>14} {usage['cost_usd']:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
