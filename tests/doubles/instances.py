"""`otklik run` processes, as an operator runs several instances on one PostgreSQL database:
each started from its config file with the test run's data keys, its output in a log file,
asked over /metrics whether it leads, stopped with SIGTERM or killed with SIGKILL.

Used by the end-to-end tests of issue 21 (tests/e2e/test_leader_failover.py,
tests/e2e/test_scaleout.py) and bench/scaleout.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.doubles.support import ROOT

PATIENCE_S = 90.0  # a bound for waiting on start-up and stop, not a speed requirement


class Instance:
    def __init__(
        self, name: str, config: Path, log: Path, metrics_port: int, api_port: int = 0
    ) -> None:
        self.name, self.config, self.log = name, config, log
        self.metrics_port, self.api_port = metrics_port, api_port
        self.process: asyncio.subprocess.Process | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        # The data keys of this test run (tests/conftest.py): every process shares them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTKLIK_")}
        env.update({k: v for k, v in os.environ.items() if k.endswith("_KEY")})
        with self.log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "handlers.cli", "run", "-c", str(self.config),
                cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far (Linux's /proc; its threads
        included)."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def said(self) -> str:
        return self.log.read_text(errors="replace")

    async def leading(self) -> bool | None:
        """From its /metrics; None while it does not answer."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                http.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response,
            ):
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        if f'otklik_leader{{instance="{self.name}"}} 1.0' in text:
            return True
        if f'otklik_leader{{instance="{self.name}"}} 0.0' in text:
            return False
        return None

    async def until_answering(self, patience_s: float = PATIENCE_S) -> bool:
        """Waits until /metrics answers; whether it leads then. Fails with the log's tail if
        the process exits or takes longer than `patience_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience_s
        while (leading := await self.leading()) is None:
            assert self.running, self.said()[-3000:]
            assert loop.time() < deadline, self.said()[-3000:]
            await asyncio.sleep(0.2)
        return leading

    async def kill(self) -> None:
        """kill -9: no shutdown of any kind, as a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), PATIENCE_S)
            except TimeoutError:
                process.kill()
                await process.wait()
