"""``rempart keys rotate``: a new active data key, then old rows re-encrypted;
``rempart keys rotate-signing``: a new key for signing access tokens.

Runs beside a live server: the server picks the new key up within a second for
new writes and still opens rows sealed with older keys, so there is no downtime.
"""

from __future__ import annotations

import asyncio
import json

from rempart.config import Settings
from rempart.security.oauth.signing import SigningKeys
from rempart.storage.crypto import RELOAD_CHECK_SECONDS
from rempart.storage.open import open_keyring, open_store

MAX_PASSES = 5


async def rotate(settings: Settings) -> int:
    ring = open_keyring(settings)
    new_key = ring.rotate()
    store = await open_store(settings, ring)
    try:
        count = await store.rewrap()
        # Running servers switch to the new key within RELOAD_CHECK_SECONDS; rows they
        # sealed with the old key meanwhile (or commit late) are caught by later passes,
        # until one finds nothing left.
        for _ in range(MAX_PASSES):
            await asyncio.sleep(2 * RELOAD_CHECK_SECONDS)
            done = await store.rewrap()
            count += done
            if done == 0:
                break
    finally:
        await store.close()
    print(json.dumps({"active_key": new_key, "rows_reencrypted": count}))
    return 0


def rotate_signing(settings: Settings) -> int:
    """A new key signs tokens from now on; running servers pick it up on the first
    token they meet signed with it, and keep verifying tokens signed with the old."""
    kid = SigningKeys(settings.storage.data_dir / "keys" / "signing-keys.json").rotate()
    print(json.dumps({"signing_key": kid}))
    return 0
