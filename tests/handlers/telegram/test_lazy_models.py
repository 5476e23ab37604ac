"""aiogram's models build on first use: unused ones cost no memory, used ones still validate."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_models_build_on_first_use_and_resolve_forward_references() -> None:
    # A process of its own: in this one, another test may have imported aiogram first.
    probe = textwrap.dedent(
        """
        import handlers.telegram  # noqa: F401
        import aiogram.types as types
        from aiogram.methods import SendMessage

        assert not types.Sticker.__pydantic_complete__, "built at import"
        assert not types.Update.__pydantic_complete__, "built at import"
        update = types.Update.model_validate({
            "update_id": 7,
            "callback_query": {
                "id": "1", "chat_instance": "c", "data": "take:3",
                "from": {"id": 5, "is_bot": False, "first_name": "Анна"},
                "message": {"message_id": 9, "date": 1, "chat": {"id": -100, "type": "supergroup"}},
            },
        })
        assert update.callback_query.message.chat.id == -100
        keyboard = types.InlineKeyboardMarkup(
            inline_keyboard=[[types.InlineKeyboardButton(text="Взять", callback_data="take:3")]]
        )
        assert SendMessage(chat_id=-100, text="x", reply_markup=keyboard).reply_markup == keyboard
        assert not types.Sticker.__pydantic_complete__, "an unused model was built"
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
