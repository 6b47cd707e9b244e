"""What every HTTP caller here shares: which failures are worth retrying, and Retry-After."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import httpx2


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asked us to wait (``retry-after-ms`` or ``Retry-After``), if it did."""
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            value = headers["retry-after"].strip()
            if value.replace(".", "", 1).isdigit():
                return float(value)
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None
    return None


def is_server_or_connection_error(error: BaseException) -> bool:
    """Connection trouble, timeouts and 5xx: worth another try. A 4xx never is."""
    if isinstance(error, httpx2.HTTPStatusError):
        return error.response.status_code >= 500
    return isinstance(error, httpx2.TransportError)


def is_transient(error: BaseException) -> bool:
    """As above, and 429 too: for APIs that rate-limit (Hugging Face)."""
    if isinstance(error, httpx2.HTTPStatusError) and error.response.status_code == 429:
        return True
    return is_server_or_connection_error(error)
