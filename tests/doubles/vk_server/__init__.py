"""An in-memory VK for tests: the API methods the bot calls (server.py) and the Callback API
events VK sends to the bot (callback.py)."""

from tests.doubles.vk_server.callback import CallbackSender
from tests.doubles.vk_server.server import Comment, PrivateMessage, VkServer

__all__ = ["CallbackSender", "Comment", "PrivateMessage", "VkServer"]
