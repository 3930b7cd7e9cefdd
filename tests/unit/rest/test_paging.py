import pytest

from rempart.errors import RempartError
from rempart.rest.paging import CursorSigner

signer = CursorSigner(b"k" * 32)


def test_cursor_round_trips_within_its_scope() -> None:
    assert signer.read("scope", signer.issue("scope", 1234)) == 1234


@pytest.mark.parametrize(
    "cursor",
    ["", "garbage", "MTIz.AAAA", "." * 10, "x" * 500, signer.issue("other", 5)],
)
def test_forged_or_moved_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(RempartError) as caught:
        signer.read("scope", cursor)
    assert caught.value.category.status == 400


def test_another_key_does_not_verify() -> None:
    with pytest.raises(RempartError):
        CursorSigner(b"j" * 32).read("scope", signer.issue("scope", 5))
