"""The `vk:` section: the community, its token from the environment, the Callback API's
secret and confirmation string, checked once at load."""

from __future__ import annotations

from pathlib import Path

from bot.settings.config import load_config
from bot.settings.connections import reserved_source_name
from tests.bot.settings.test_config import base, problems_of, write

TOKEN = "vk1.a.realistic0token0value0abcdefghijklmnop"


def vk(**values: object) -> dict[str, object]:
    data = base()
    data["vk"] = {"group_id": 218861756, **values}
    return data


def test_vk_with_token_from_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        vk(token="${OTKLIK_VK_TOKEN:-}", secret="Abc123", confirmation="a1b2c3d4"),
    )
    config = load_config(path, env={"OTKLIK_VK_TOKEN": TOKEN})
    assert config.vk_enabled and config.vk is not None
    assert config.vk.token == TOKEN and config.vk.version == "5.199"
    assert config.vk.api_base == "https://api.vk.com"
    assert config.vk.callback_path == "/vk/callback"
    # No token in the environment: VK is off, the rest of the bot starts.
    assert not load_config(path, env={}).vk_enabled


def test_a_token_needs_the_secret_and_the_confirmation(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, vk(token=TOKEN, confirmation="a1b2c3d4")))
    assert "secret" in problems["vk.secret"] and "every Callback API event" in problems["vk.secret"]
    problems = problems_of(write(tmp_path, vk(token=TOKEN, secret="Abc123")))
    assert "vk.confirmation" in problems


def test_bad_values_are_refused_with_their_paths(tmp_path: Path) -> None:
    data = vk(
        token=TOKEN,
        secret="not a secret!",
        confirmation="a1b2",
        callback_path="/api/v1/mentions",
        version="5.131",
        api_base="api.vk.com",
        groupid=1,
    )
    data["vk"]["group_id"] = -5  # type: ignore[index]
    problems = problems_of(write(tmp_path, data))
    for field in (
        "vk.secret",
        "vk.callback_path",
        "vk.version",
        "vk.api_base",
        "vk.groupid",
        "vk.group_id",
    ):
        assert field in problems, (field, problems)
    placeholder = problems_of(
        write(tmp_path, vk(token="your-vk-token", secret="a", confirmation="b"))
    )
    assert "placeholder" in placeholder["vk.token"]


def test_vk_source_names_are_the_adapters_own() -> None:
    assert reserved_source_name("vk:wall") is not None
    assert reserved_source_name("VK:message") is not None
    assert reserved_source_name("vk") is None  # monitoring services send VK mentions so
