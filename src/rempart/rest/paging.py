"""Opaque, signed paging cursors for history and search bundles.

A cursor names the sequence number below which the next page starts; it is bound
to the request path and signed with HMAC-SHA256, so a caller can neither forge
one nor move it to another query: a tampered cursor is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from rempart.errors import Category, RempartError

TAG_BYTES = 16


class CursorSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, scope: str, position: int) -> str:
        return self.issue_text(scope, str(position))

    def read(self, scope: str, cursor: str) -> int:
        try:
            return int(self.read_text(scope, cursor))
        except ValueError:
            raise _invalid() from None

    def issue_text(self, scope: str, text: str) -> str:
        payload = text.encode()
        return f"{_b64(payload)}.{_b64(self._tag(scope, payload))}"

    def read_text(self, scope: str, cursor: str) -> str:
        try:
            encoded, tag = cursor.split(".", 1)
            payload = _unb64(encoded)
            valid = hmac.compare_digest(_unb64(tag), self._tag(scope, payload))
            text = payload.decode("ascii")
        except ValueError:  # UnicodeDecodeError and binascii.Error are ValueErrors
            valid = False
        if not valid:
            raise _invalid()
        return text

    def _tag(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode() + b"\x00" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:TAG_BYTES]


def _invalid() -> RempartError:
    return RempartError(Category.INCORRECT, "Invalid paging cursor")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if len(text) > 64:
        raise ValueError("cursor too long")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
