"""Can the Hugging Face hub be reached? One bounded probe per process.

Without `HF_HUB_OFFLINE`, huggingface_hub retries a hub it cannot reach with back-off
(five retries per file, about a minute of warnings) before a loader gives up. kandanim
asks once instead, with a short timeout, and loads from the local cache only when the
answer is not "online": missing weights then fail in seconds with one message, and cached
weights load without a single network attempt.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

from kandanim.spec import DEFAULT_PRIOR

PROBE_TIMEOUT_S = 3.0  # DNS + connect + first response; a reachable hub answers in ~0.3 s
_TRUE = {"1", "true", "yes", "on"}

Mode = Literal["online", "unreachable", "offline"]


@dataclass(frozen=True)
class HubStatus:
    mode: Mode  # offline: HF_HUB_OFFLINE set; unreachable: the probe failed
    endpoint: str
    detail: str  # why unreachable, or how long the answer took

    @property
    def online(self) -> bool:
        return self.mode == "online"


def offline_flag() -> bool:
    """True when the user said not to contact the hub (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.is_offline_mode() or flag.strip().lower() in _TRUE


def hub_status(timeout: float = PROBE_TIMEOUT_S) -> HubStatus:
    """online / unreachable / offline (by flag), probing at most once per process."""
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    if offline_flag():
        return HubStatus("offline", endpoint, "HF_HUB_OFFLINE is set")
    return _probe(endpoint, timeout)


@cache
def _probe(endpoint: str, timeout: float) -> HubStatus:
    """One HEAD request for a file of the default prior, as `hf_hub_download` asks (proxies
    and certificates as huggingface_hub configures them), in a thread so that a resolver
    which ignores timeouts cannot hold us longer than `timeout`. Only an answer that carries
    the hub's own headers counts: captive portals and proxies answer anything."""
    import time

    outcome: dict[str, str] = {}
    url = f"{endpoint.rstrip('/')}/{DEFAULT_PRIOR}/resolve/main/model_index.json"

    def ask() -> None:
        started = time.monotonic()
        try:
            from huggingface_hub.utils import get_session

            answer = get_session().head(url, timeout=timeout, follow_redirects=False)
        except Exception as error:  # noqa: BLE001 - DNS, refused, TLS, timeout: "cannot reach it"
            outcome["error"] = _reason(error)
            return
        if _from_the_hub(answer.headers):
            outcome["ok"] = f"answered in {time.monotonic() - started:.1f} s"
        else:
            server = answer.headers.get("server", "unknown")
            outcome["error"] = f"HTTP {answer.status_code} from a server that is not the hub ({server})"

    worker = threading.Thread(target=ask, name="kandanim-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if "ok" in outcome:
        return HubStatus("online", endpoint, outcome["ok"])
    reason = outcome.get("error", f"no answer within {timeout:g} s")
    return HubStatus("unreachable", endpoint, reason)


def _from_the_hub(headers: Mapping[str, str]) -> bool:
    """The hub names the commit it serves, or says in its own header why it will not."""
    names = {name.lower() for name in headers}
    return "x-repo-commit" in names or any(n.startswith("x-error-") for n in names)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    name = type(error).__name__
    return f"{name}: {first}"[:160] if first else name
