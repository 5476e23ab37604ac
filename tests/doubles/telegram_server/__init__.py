"""A Telegram Bot API test server that the real aiogram `Bot` talks to over HTTP.

It follows the published Bot API (https://core.telegram.org/bots/api) and, where the docs are
silent, what the reference implementation (tdlib + telegram-bot-api) does: the same error codes
and descriptions, the HTML parser's exact rules, the text clean-up and trimming, the limits
(4096/1024 UTF-16 code units, 1-64 byte callback data, 100 buttons), privacy mode, long polling
and flood control. A bot that passes against it should therefore pass against Telegram.

    from tests.doubles.telegram_server.flood import Limits
    from tests.doubles.telegram_server.server import TelegramServer

    server = TelegramServer(Limits(time_scale=10))
    await server.start()
    info = server.add_bot("123456:secret", "otklik_bot")
    bot = Bot(info.token, session=AiohttpSession(
        api=TelegramAPIServer.from_base(server.api_base)))
    forum = server.create_chat("supergroup", "Ops", is_forum=True)
    topic = server.create_topic(forum.id, "Roads")
    ann = server.create_user("Ann", "ann")
    server.send_user_message(forum.id, ann, "/status", thread_id=topic)  # -> an update
    await server.wait_for(lambda: len(server.messages(forum.id, topic)) == 2)

Tests act as people through plain methods (`send_user_message`, `press_button`,
`post_to_channel`, ...) and read the state back (`messages`, `history`, `stats`, `wait_for`,
`wait_answer`). Everything is in memory and runs on the test's event loop, so state changes
need no locks; every change wakes the waiters, nothing polls.

One module per Bot API area; `TelegramServer` (server.py) inherits one mixin per area over the
shared state in core.py. A tour, each module naming the next:

    server.py           TelegramServer: the areas put together
    core.py             state, who sees what (privacy mode, update fan-out), serialisation, checks
    app.py              HTTP: start/stop, parameters, routing to `_api_<method>`, error envelope
    updates.py          getUpdates and long polling
    webhooks.py         setWebhook, deleteWebhook, getWebhookInfo; delivery by POST
    messages.py         sendMessage, sendPhoto, edits, deleteMessage; replies, threads, topics
    entities.py         UTF-16 lengths, links, text clean-up, automatic and explicit entities
    html_parser.py      the HTML parse mode (tdlib's parser)
    markdown_parser.py  MarkdownV2 and legacy Markdown
    keyboards.py        reply markup checks, answerCallbackQuery
    files.py            photo input and sizes, getFile
    commands.py         getMe, the command menus
    chats.py            getChat, getChatMember, getChatAdministrators, sendChatAction
    people.py           the test side: build the world, act as people, read state back
    state.py            users, bots, chats, messages, call records
    flood.py            Limits and flood control
    protocol.py         errors as Telegram words them, limits, parameter reading
"""
