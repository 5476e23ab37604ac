"""Callback API objects become mentions, or nothing: pure translation (handlers/vk/events.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.cases.replies import origin_of
from bot.model import Mention
from handlers.vk.events import Deleted, translate

GROUP = 42
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def comment(**values: object) -> dict[str, object]:
    return {
        "id": 7,
        "from_id": 100,
        "date": 1_764_000_000,
        "text": "Нет воды",
        "post_id": 5,
        "owner_id": -GROUP,
        **values,
    }


def mention(type_: str, obj: object) -> Mention:
    found = translate(type_, obj, GROUP, NOW)
    assert isinstance(found, Mention)
    return found


def test_a_wall_comment_is_a_mention_with_its_link_author_and_answer_place() -> None:
    found = mention("wall_reply_new", comment())
    assert (found.source, found.external_id) == ("vk:wall", f"-{GROUP}_5:7")
    assert found.url == f"https://vk.com/wall-{GROUP}_5?reply=7"
    assert found.reply_to_url is None
    assert found.author.channel == "vk" and found.author.external_id == "100"
    assert found.author.profile_url == "https://vk.com/id100"
    assert found.published_at == datetime.fromtimestamp(1_764_000_000, UTC)
    origin = origin_of(found, frozenset())
    assert origin is not None and (origin.transport, origin.chat, origin.message_id) == (
        "vk",
        f"wall-{GROUP}_5",
        "7",
    )


def test_a_reply_in_a_thread_points_at_the_threads_first_comment() -> None:
    found = mention("wall_reply_new", comment(id=9, parents_stack=[7], reply_to_comment=8))
    assert found.url == f"https://vk.com/wall-{GROUP}_5?reply=9&thread=7"
    assert found.reply_to_url == f"https://vk.com/wall-{GROUP}_5?reply=7"


def test_an_edit_is_new_words_joining_the_comment_a_delete_is_no_mention() -> None:
    edited = mention("wall_reply_edit", comment(text="Нет воды неделю"))
    assert edited.external_id.startswith(f"-{GROUP}_5:7:edit:")
    assert edited.reply_to_url == f"https://vk.com/wall-{GROUP}_5?reply=7"
    assert mention("wall_reply_edit", comment(text="Нет воды неделю")) == edited
    origin = origin_of(edited, frozenset())
    assert origin is not None and origin.message_id == "7"  # answered under the comment
    gone = {"owner_id": -GROUP, "id": 7, "post_id": 5, "deleter_id": 100}
    assert translate("wall_reply_delete", gone, GROUP, NOW) == Deleted("vk:wall", f"-{GROUP}_5:7")
    restored = mention("wall_reply_restore", comment())
    assert restored.external_id == f"-{GROUP}_5:7"  # the stored one: a duplicate


def test_photo_video_and_board_comments_have_their_own_sources_and_links() -> None:
    photo = mention("photo_comment_new", {**comment(), "photo_id": 3, "photo_owner_id": -GROUP})
    assert photo.source == "vk:photo"
    assert photo.url == f"https://vk.com/photo-{GROUP}_3?reply=7"
    assert origin_of(photo, frozenset()) is None  # answered by hand, not by the bot
    video = mention("video_comment_new", {**comment(), "video_id": 4, "video_owner_id": -GROUP})
    assert video.url == f"https://vk.com/video-{GROUP}_4?reply=7"
    board = mention("board_post_new", {**comment(), "topic_id": 2, "topic_owner_id": -GROUP})
    assert (board.source, board.url) == ("vk:board", f"https://vk.com/topic-{GROUP}_2?post=7")


def test_a_message_to_the_community_is_answered_by_message() -> None:
    obj = {"message": {"id": 31, "peer_id": 100, "from_id": 100, "text": "Помогите", "date": 1}}
    found = mention("message_new", obj)
    assert (found.source, found.external_id, found.url) == ("vk:message", "100:31", None)
    origin = origin_of(found, frozenset())
    assert origin is not None and (origin.chat, origin.message_id) == ("peer100", "31")


def test_what_is_not_a_citizens_words_is_nothing() -> None:
    for type_, obj in (
        ("wall_reply_new", comment(from_id=-GROUP)),  # the community answering
        ("wall_reply_new", comment(owner_id=-99)),  # another community's wall
        ("wall_reply_new", comment(text="  ")),
        ("wall_reply_new", comment(id="7")),  # ids are numbers
        ("wall_reply_new", comment(from_id=True)),
        ("wall_reply_new", comment(post_id=2**70)),
        ("wall_reply_new", ["not", "an", "object"]),
        ("group_join", {"user_id": 1}),
        (
            "message_new",
            {"message": {"id": 1, "peer_id": 2_000_000_001, "from_id": 5, "text": "x"}},
        ),
        ("message_new", {"message": "x"}),
    ):
        assert translate(type_, obj, GROUP, NOW) is None, (type_, obj)


def test_hostile_text_is_bounded_and_stripped_of_nul() -> None:
    found = mention("wall_reply_new", comment(text="a\x00b" + "я" * 30_000))
    assert found.text.startswith("ab") and len(found.text) == 20_000
