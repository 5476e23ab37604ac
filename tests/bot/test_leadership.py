import asyncio

from bot.leadership import Leadership


async def test_waiters_wake_on_each_change() -> None:
    leadership = Leadership(leading=False)
    gained = asyncio.create_task(leadership.until_leading())
    await asyncio.sleep(0)
    assert not gained.done()
    leadership.set(True)
    await asyncio.wait_for(gained, 1)
    lost = asyncio.create_task(leadership.until_lost())
    await asyncio.sleep(0)
    assert not lost.done()
    leadership.set(True)  # no change: nobody wakes
    await asyncio.sleep(0)
    assert not lost.done()
    leadership.set(False)
    await asyncio.wait_for(lost, 1)
    assert not leadership.leading


async def test_a_single_process_leads_from_the_start() -> None:
    leadership = Leadership()
    assert leadership.leading
    await asyncio.wait_for(leadership.until_leading(), 1)
