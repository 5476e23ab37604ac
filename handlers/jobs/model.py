"""The organisation's sentiment model, retrained on a schedule (config `model.retrain_cron`).

Training takes seconds of CPU (scikit-learn, feature extraction in pure Python): it runs in a
child process, so the event loop goes on taking mentions meanwhile. The child writes the
organisation model file only when the new model wins (bot/intake/sentiment/learning.py);
afterwards intake switches to that file's model if it is not the one in use already (which
also picks up a model `otklik model retrain` wrote while the bot was running).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.intake.intake import MentionIntake
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.learning import (
    SINCE_EVER,
    Retraining,
    RetrainRequest,
    retrain_organisation,
)
from bot.intake.sentiment.model import ModelClassifier, load_organisation_model
from bot.ports import UnitOfWorkFactory
from handlers.jobs import add_job

log = logging.getLogger(__name__)

JOB_ID = "sentiment-retrain"
MISFIRE_GRACE_S = 3600


class ModelJobs:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        intake: MentionIntake,
        lexicon: SentimentClassifier,
        request: RetrainRequest,  # everything but the corrections, read at each run
        cron: str | None,
        tz: ZoneInfo,
    ) -> None:
        self._uow = uow
        self._intake = intake
        self._lexicon = lexicon
        self._request = request
        self._trigger = CronTrigger.from_crontab(cron, timezone=tz) if cron else None
        self._executor: ProcessPoolExecutor | None = None

    def schedule(self, scheduler: BaseScheduler) -> None:
        if self._trigger is None:
            return
        add_job(
            scheduler,
            self.run,
            self._trigger,
            job_id=JOB_ID,
            name="sentiment model retraining",
            misfire_grace_s=MISFIRE_GRACE_S,
        )

    async def run(self) -> Retraining | None:
        """Retrain from every staff correction; None when it failed (logged)."""
        try:
            async with self._uow() as uow:
                corrections = await uow.mentions.corrections(SINCE_EVER)
            request = replace(self._request, corrections=tuple(corrections))
            result = await self._in_child(request)
            log.info("sentiment model retraining: %s", result.summary())
            await self.use_organisation_model()
            return result
        except Exception:  # the bot goes on with the model it has
            log.exception("sentiment model retraining failed")
            return None

    async def use_organisation_model(self) -> bool:
        """Switch intake to the organisation model file unless it is in use; False: no
        file, an unreadable one, or the same model."""
        path = self._request.organisation_model
        model = await asyncio.to_thread(load_organisation_model, path)
        if model is None:
            return False
        in_use = self._intake.model
        if (
            in_use is not None
            and in_use.model.path == path
            and in_use.model.trained_at == model.trained_at
        ):
            return False
        self._intake.use_model(ModelClassifier(model, self._lexicon, self._request.band))
        log.info("sentiment model: now the organisation's own, trained %s", model.trained_at)
        return True

    async def _in_child(self, request: RetrainRequest) -> Retraining:
        # spawn, not fork: a forked copy of a process with threads and sockets is unsafe.
        self._executor = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, retrain_organisation, request)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def stop(self) -> None:
        if self._executor is not None:  # a run in flight: its result no longer matters
            self._executor.shutdown(wait=False, cancel_futures=True)
