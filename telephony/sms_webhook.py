"""The signature of the generic SMS webhook: HMAC-SHA256 over a Unix timestamp and the body,
valid within a window around the platform's clock (a captured request goes stale)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds; more is not a time


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256(secret, "<timestamp>." + body): what a provider sends."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def refusal(
    secret: str, timestamp: str, signature: str, body: bytes, now: datetime, window_s: float
) -> str | None:
    """Why the request is not the provider's fresh one (None: signed and within the window)."""
    ts = timestamp.strip()
    if not ts:
        return f"缺少 {TIMESTAMP_HEADER}（Unix 秒）"
    if not ts.isascii() or not ts.isdigit() or len(ts) > MAX_TIMESTAMP_DIGITS:
        return f"{TIMESTAMP_HEADER} 应为 Unix 秒（十进制整数）"
    given = signature.strip().lower().encode("utf-8", "replace")
    # the signature first: nobody learns about the clock window without the secret
    if not hmac.compare_digest(given, sign(secret, ts, body).encode()):
        return "签名校验失败"
    skew = now.timestamp() - int(ts)
    if skew > window_s:
        return f"请求已过期（{TIMESTAMP_HEADER} 早于 {window_s:g} 秒之前）"
    if skew < -window_s:
        return f"{TIMESTAMP_HEADER} 在未来（超过 {window_s:g} 秒），请校准时钟"
    return None
