"""Shadow judging: a sampled share of answered requests is also answered, in the background, by
the other tier, and a judge model grades the two answers; the grades become outcomes in the
decision log (`source="shadow"`), which `router retrain` learns from.

Configured by the `shadow:` section: `{rate, judge, max_usd_per_day}` (config.ShadowSpec).

- **Never in the client's way.** `offer()` is called after the response is built; it samples,
  then puts the request on a bounded queue without waiting. A full queue drops the sample and
  counts it. Workers on the event loop make the two extra calls later.
- **The other tier.** A request routed to a cheap model is answered by the large model
  (`shadow.large`, else the policy's first large model); an escalated one by the cheap model
  the policy would have picked for its domain.
- **The judge** sees the question and both answers in a random order and gives each a grade of
  1-10; a grade g becomes the outcome score (g − 1) / 9 for that answer's model. The judge
  *agrees* with the routing decision when the routed answer is at least as good as the cheap
  one (routed cheap) or better than it (escalated).
- **Follows hot reloads** (`follow_reload`, called by the proxy after each swap): a reload that
  adds the section starts judging, one that removes it stops sampling (samples already queued
  finish, then the workers end), and a new `queue_size` or `workers` gets a new queue and
  workers (the old ones finish what they hold).
- **A daily budget.** Before a sample's calls, the most they can cost (prompt tokens at input
  price, `max_tokens` at output price, for the shadow answer and the judge) is reserved against
  `max_usd_per_day` for the UTC day, in the shared state (all replicas draw on one budget); once
  the actual cost is known the reservation is trued up. A sample that does not fit is dropped,
  and the judge rests until the next UTC day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router.core.config import ShadowSpec

log = logging.getLogger("router.learning.shadow")

JUDGE_SYSTEM = (
    "You are a strict grader. Given a question and two answers, rate how correct and helpful "
    "each answer is from 1 (useless or wrong) to 10 (fully correct). Reply with JSON only: "
    '{"A": <1-10>, "B": <1-10>}'
)
JUDGE_MAX_TOKENS = 32
MAX_ANSWER_CHARS = 4000
_GRADE = {k: re.compile(rf'"?{k}"?\s*[:=]\s*(\d+(?:\.\d+)?)') for k in "AB"}


@dataclass
class Sample:
    """One answered request to shadow: what the judge needs, and the router that answered it."""

    request_id: str
    router: Any
    question: str
    messages: list
    decision: Any
    answer: str
    day: str


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def parse_grades(reply: str) -> tuple[float, float] | None:
    """(grade of A, grade of B) in 1..10 from the judge's reply, or None if unreadable."""
    grades = []
    try:
        obj = json.loads(reply[reply.index("{") : reply.rindex("}") + 1])
        grades = [float(obj["A"]), float(obj["B"])]
    except (ValueError, KeyError, TypeError):
        for k in "AB":
            m = _GRADE[k].search(reply)
            if m is None:
                return None
            grades.append(float(m.group(1)))
    if not all(1 <= g <= 10 for g in grades):
        return None
    return grades[0], grades[1]


def answer_text(answer: Any) -> str | None:
    """The text of an answer: a string, or the first choice of a chat completion."""
    if isinstance(answer, str) or answer is None:
        return answer
    try:
        text = answer.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


def judge_prompt(question: str, a: str, b: str) -> list[dict]:
    user = (
        f"Question:\n{question}\n\nAnswer A:\n{a[:MAX_ANSWER_CHARS]}\n\n"
        f"Answer B:\n{b[:MAX_ANSWER_CHARS]}\n\nGrade both answers."
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


class ShadowJudge:
    """Samples answered requests, answers them with the other tier and has a judge grade both.

    `router_of()` returns the router serving now (it changes on a hot reload); `decisions` is
    the proxy's decision log (outcomes go there; None: graded but not stored). The settings are
    that router's `shadow:` section, so a reload changes them (removes it: no more samples);
    `spec` gives only `queue_size` and `workers`, fixed when the workers start (`follow` starts
    new ones when a reload changes them).
    """

    def __init__(
        self,
        router_of: Callable[[], Any],
        spec: ShadowSpec,
        decisions: Any | None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.router_of = router_of
        self.started_spec = spec
        self.decisions = decisions
        self.clock = clock
        self.rng = rng or random.Random()
        self.queue: asyncio.Queue[Sample] | None = None
        self._workers: list[asyncio.Task] = []
        # Queues a reload replaced or removed, finishing the samples they hold (`_retire`).
        self._retiring: set[asyncio.Task] = set()
        self.offered = 0  # requests seen
        self.sampled = 0  # put on the queue
        self.judged = 0
        self.failed = 0
        self.agreed = 0
        self.dropped: Counter[str] = Counter({"queue_full": 0, "budget": 0})
        self.spend_usd = 0.0  # this process's shadow + judge spend
        # (UTC day, cap) when the budget ran out: a reload that raises the cap ends the rest.
        self._resting: tuple[str, float] | None = None
        self._today = ("", 0.0)  # (day, spend all replicas) at the last reservation
        self.last_error: str | None = None

    def spec_of(self, router: Any) -> ShadowSpec | None:
        """`router`'s `shadow:` settings (None: a reload turned shadow judging off)."""
        config = getattr(router, "config", None)
        return getattr(config, "shadow", self.started_spec) if config is not None else None

    def settings(self, router: Any) -> ShadowSpec:
        """`router`'s settings, else those the workers started with (a sample already queued
        when a reload removed the section still finishes)."""
        return self.spec_of(router) or self.started_spec

    @property
    def spec(self) -> ShadowSpec:
        """The serving router's settings, else those the workers started with."""
        return self.settings(self.router_of())

    # ---- the request path: never blocks ----------------------------------------------------

    def offer(self, request_id: str, messages: list, decision: Any, answer: Any) -> bool:
        """Maybe shadow this answered request (`answer`: its text, or the chat response);
        True when it was queued. O(1), never waits, never raises into the request."""
        try:
            return self._offer(request_id, messages, decision, answer_text(answer))
        except Exception:  # noqa: BLE001 - shadowing must never fail a request
            log.exception("shadow: could not sample request %s", request_id)
            return False

    def _offer(self, request_id: str, messages: list, decision: Any, answer: str | None) -> bool:
        self.offered += 1
        if self.queue is None or not answer or not answer.strip():
            return False
        if decision is None or decision.tier not in ("small", "large"):
            return False
        router = self.router_of()
        spec = self.spec_of(router)
        if spec is None or self.rng.random() >= spec.rate:
            return False
        day = utc_day(self.clock())
        if self._resting == (day, spec.max_usd_per_day):
            self.dropped["budget"] += 1
            return False
        sample = Sample(
            request_id, router, router.text_of(messages), messages, decision, answer, day
        )
        try:
            self.queue.put_nowait(sample)
        except asyncio.QueueFull:
            self.dropped["queue_full"] += 1
            return False
        self.sampled += 1
        return True

    # ---- workers ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers (on the running event loop)."""
        if self.queue is not None:
            return
        queue: asyncio.Queue[Sample] = asyncio.Queue(self.started_spec.queue_size)
        self.queue = queue
        router = self.router_of()
        for name in {self.spec.judge, self.spec.large} - {None}:
            try:
                router.calls.kwargs(name, {})
            except Exception as e:  # noqa: BLE001 - said once; each sample then counts as failed
                log.warning("shadow judging: model %s cannot be called (%s)", name, e)
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._work(queue)) for _ in range(self.started_spec.workers)
        ]

    def follow(self) -> None:
        """Match the workers to the serving router's `shadow:` section, after a hot reload (on
        the event loop): removed, no more samples are taken and the workers end once those
        queued are judged; added back, workers start; a new `queue_size` or `workers`, a new
        queue and workers take over while the old ones finish what they hold."""
        spec = self.spec_of(self.router_of())
        if spec is None:
            if self.queue is not None:
                self._retire()
                log.info("shadow judging stopped: the reloaded config has no shadow section")
            return
        shape = (spec.queue_size, spec.workers)
        if self.queue is not None:
            if shape == (self.started_spec.queue_size, self.started_spec.workers):
                return
            self._retire()
        else:
            log.info("shadow judging started: the reloaded config has a shadow section")
        self.started_spec = spec
        self.start()

    def _retire(self) -> None:
        """Take no more samples on the current queue; its workers end once it is empty."""
        queue, workers = self.queue, self._workers
        self.queue, self._workers = None, []
        if queue is None:
            return

        async def finish() -> None:
            try:
                await queue.join()
            finally:
                await _cancel(workers)

        task = asyncio.get_running_loop().create_task(finish())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @property
    def running(self) -> bool:
        """Whether samples are being taken (workers started and not retired)."""
        return self.queue is not None

    async def stop(self) -> None:
        """Cancel the workers; queued samples are abandoned (they are only samples)."""
        await _cancel([*self._workers, *self._retiring])
        self._workers = []
        self.queue = None

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued sample is finished (tests); False on timeout."""
        if self.queue is None:
            return True
        try:
            await asyncio.wait_for(self.queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def _work(self, queue: asyncio.Queue[Sample]) -> None:
        while True:
            sample = await queue.get()
            try:
                await self.judge(sample)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a sample's failure is counted, not raised
                self.failed += 1
                self.last_error = (
                    f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                )
                log.warning("shadow sample %s failed: %s", sample.request_id, self.last_error)
            finally:
                queue.task_done()

    # ---- one sample -------------------------------------------------------------------------

    def other_model(self, router: Any, decision: Any) -> str:
        """The other tier's model for this decision."""
        policy = router.policies[decision.policy]
        if decision.tier == "small":
            return self.settings(router).large or policy.large[0]
        cheap = policy.domains.get(decision.domain or "", policy.default)
        return cheap[0]

    def _max_cost(self, router: Any, other: str, sample: Sample) -> float:
        """The most the sample's two calls can cost (tokens estimated at 4 characters each)."""
        q_tokens = sum(len(str(m.get("content") or "")) for m in sample.messages) / 4 + 16
        spec = self.settings(router)
        spec_o, spec_j = router.config.model(other), router.config.model(spec.judge)
        judge_in = (len(sample.question) + len(sample.answer) + 2 * MAX_ANSWER_CHARS) / 4 + 120
        return spec_o.cost(q_tokens, spec.max_tokens) + spec_j.cost(judge_in, JUDGE_MAX_TOKENS)

    async def _reserve(self, router: Any, day: str, usd: float) -> bool:
        """Reserve `usd` of the day's budget (shared by every replica); False if it would not fit."""
        key = f"shadow:usd:{day}"
        cap = self.settings(router).max_usd_per_day
        total = float(await router.state.incr(key, usd, ttl_s=3 * 86400))
        if total > cap + 1e-12:
            await router.state.incr(key, -usd, ttl_s=3 * 86400)
            self._resting = (day, cap)
            self._today = (day, total - usd)
            log.warning(
                "shadow judging rests until tomorrow (UTC): the daily budget of $%.4f is spent",
                cap,
            )
            return False
        self._today = (day, total)
        return True

    async def _call(self, router: Any, model: str, messages: list, max_tokens: int):
        from router.serving import upstream

        kw = router.calls.kwargs(model, {"max_tokens": max_tokens})
        kw.setdefault("max_retries", 0)
        # Through the one call path (serving/upstream.py): its media-URL checks apply here too.
        resp = await upstream.acompletion(messages, **kw)
        text = resp.choices[0].message.content or ""
        usage = getattr(resp, "usage", None)
        tokens = (
            (getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)
            if usage is not None
            else (0, 0)
        )
        return text, router.config.model(model).cost(*tokens)

    async def judge(self, sample: Sample) -> dict[str, Any] | None:
        """Answer with the other tier, grade both, record the outcomes. None: budget spent."""
        router, d = sample.router, sample.decision
        # The settings of the router that answered: its catalogue has the judge they name.
        spec = self.settings(router)
        other = self.other_model(router, d)
        reserved = self._max_cost(router, other, sample)
        if not await self._reserve(router, sample.day, reserved):
            self.dropped["budget"] += 1
            return None
        spent = 0.0
        try:
            shadow_answer, cost = await self._call(router, other, sample.messages, spec.max_tokens)
            spent += cost
            swap = self.rng.random() < 0.5  # the judge must not learn which one is routed
            a, b = (shadow_answer, sample.answer) if swap else (sample.answer, shadow_answer)
            reply, cost = await self._call(
                router, spec.judge, judge_prompt(sample.question, a, b), JUDGE_MAX_TOKENS
            )
            spent += cost
        finally:
            # True the reservation up to what the calls cost (reported usage).
            await router.state.incr(f"shadow:usd:{sample.day}", spent - reserved, ttl_s=3 * 86400)
            self.spend_usd += spent
        grades = parse_grades(reply)
        if grades is None:
            raise ValueError(f"unreadable judge reply {reply[:80]!r}")
        g_routed, g_other = (grades[1], grades[0]) if swap else grades
        routed, shadowed = (g_routed - 1) / 9, (g_other - 1) / 9
        agrees = routed >= shadowed if d.tier == "small" else routed > shadowed
        detail = {
            "judge": spec.judge,
            "routed_model": d.model,
            "shadow_model": other,
            "grades": {d.model: g_routed, other: g_other},
            "agrees": agrees,
            "usd": round(spent, 8),
        }
        if self.decisions is not None:
            await asyncio.to_thread(
                self._record, sample.request_id, d.model, routed, other, shadowed, detail
            )
        self.judged += 1
        self.agreed += 1 if agrees else 0
        return {"scores": {d.model: routed, other: shadowed}, **detail}

    def _record(self, request_id, routed_model, routed, other, shadowed, detail) -> None:
        self.decisions.record_outcome(request_id, routed, "shadow", routed_model, detail)
        self.decisions.record_outcome(request_id, shadowed, "shadow", other, detail)

    # ---- what /metrics shows ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        day = utc_day(self.clock())
        today = self._today[1] if self._today[0] == day else 0.0
        spec = self.spec
        return {
            "offered": self.offered,
            "sampled": self.sampled,
            "judged": self.judged,
            "failed": self.failed,
            "dropped": dict(self.dropped),
            "agreement": self.agreed / self.judged if self.judged else None,
            "spend_usd": self.spend_usd,
            "spend_today_usd": today,
            "max_usd_per_day": spec.max_usd_per_day,
            "resting": self._resting == (day, spec.max_usd_per_day),
            "queued": self.queue.qsize() if self.queue is not None else 0,
        }


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


def follow_reload(
    judge: ShadowJudge | None, router_of: Callable[[], Any], decisions: Any | None
) -> ShadowJudge | None:
    """The shadow judge once a hot reload swapped in `router_of()` (call it on the event loop,
    right after the swap): `judge` following the new `shadow:` section (`ShadowJudge.follow`),
    or, when the proxy had none and the section is new, a new judge, started. None: no section
    now or before."""
    if judge is not None:
        judge.follow()
        return judge
    spec = getattr(getattr(router_of(), "config", None), "shadow", None)
    if spec is None:
        return None
    judge = ShadowJudge(router_of, spec, decisions)
    judge.start()
    log.info("shadow judging started: the reloaded config has a shadow section")
    return judge
