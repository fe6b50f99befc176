"""Scores + request facts + catalogue → Decision. Pure: no I/O, no embeddings.

Two stages:

1. **Hard rules**, in the policy's order, narrow the models a request may use (tools, json,
   vision, context window, streaming) or pin one. They never look at scores.
2. **Score stage** (`select`, vectorised over many requests so evaluation sweeps run through the
   very code that routes live traffic): the domain's cheap specialist, unless the domain
   confidence is below `min_domain_confidence`, the difficulty is above `max_difficulty`, the
   escalation gain is above `max_gain`, or (with per-model success probabilities) no cheap model
   reaches `min_success` — then the first eligible large model. The gain compared is the
   scorer's gain head blended with the cheap and large candidates' own success estimates
   (`blended_gain`), unless the policy says `gain_estimate: head`. With `cost_weight`, the model
   with the best p(success) − cost_weight × relative cost instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np

from router.core.config import Escalation, ModelSpec, Policy, PrivacySpec
from router.core.decision import Decision
from router.core.request import (
    CONTEXT_LENGTH_EXCEEDED,
    RequestError,
    RequestFacts,
    context_overflow,
)

# Reason codes of the score stage.
CHEAP, LOW_CONFIDENCE, HARD, NO_SUCCESS, NO_CHEAP, NO_TEXT, UTILITY, GAIN, TIED = range(9)

# Cascade modes of a request (docs/cascades.md).
UNCHECKED, JUDGED, STRAIGHT_TO_LARGE = range(3)
CASCADE_MODE_NAMES = ("unchecked", "judged", "large")


def blended_gain(gain: np.ndarray, p_large: np.ndarray, p_cheap: np.ndarray) -> np.ndarray:
    """Two estimates of P(the large model is right where the cheap one is wrong), averaged in
    log-odds: the scorer's gain head, and p_large × (1 − p_cheap) from the two models' success
    estimates (their outcomes taken as independent given the prompt). Where either success
    estimate is missing (NaN), the gain head alone."""
    gain = np.asarray(gain, dtype=float)
    from_success = np.asarray(p_large, dtype=float) * (1.0 - np.asarray(p_cheap, dtype=float))
    known = ~np.isnan(from_success)
    mixed = _sigmoid(0.5 * _logit(gain) + 0.5 * _logit(np.where(known, from_success, 0.5)))
    return np.where(known, mixed, gain)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)  # the scorer's own clip (router/core/heads.py, EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def cascade_modes(prompt_p: np.ndarray, threshold: float, band: float | None) -> np.ndarray:
    """Per request, from the prompt scorer's P(cheap answer right): UNCHECKED when it is at
    least threshold + band, STRAIGHT_TO_LARGE when at most threshold - band, else JUDGED (the
    cheap model answers and the verifier judges). Without a band every request is JUDGED.
    Evaluation sweeps and live traffic both decide here."""
    prompt_p = np.asarray(prompt_p, dtype=float)
    if band is None:
        return np.full(len(prompt_p), JUDGED)
    return np.where(
        prompt_p >= threshold + band,
        UNCHECKED,
        np.where(prompt_p <= threshold - band, STRAIGHT_TO_LARGE, JUDGED),
    )


def standard_error(success: np.ndarray, evidence: np.ndarray | None) -> np.ndarray:
    """sqrt(p(1 − p) / (evidence + 1)): a success estimate's binomial standard error on the
    evidence behind it; 0 where the evidence is unknown (None or NaN)."""
    p = np.nan_to_num(np.clip(success, 0.0, 1.0))
    if evidence is None:
        return np.zeros_like(p, dtype=float)
    return np.sqrt(p * (1 - p) / (np.nan_to_num(evidence, nan=np.inf) + 1.0))


def lower_bound(
    success: np.ndarray,
    evidence: np.ndarray | None,
    pessimism: float,
    se: np.ndarray | None = None,
) -> np.ndarray:
    """p − pessimism × its standard error (`standard_error`, or `se` when the caller has it
    already): an estimate resting on little evidence counts for less. Unknown evidence (NaN)
    leaves p as it is."""
    if evidence is None or pessimism == 0:
        return success
    se = standard_error(success, evidence) if se is None else se
    return np.where(np.isnan(success), np.nan, np.clip(success, 0.0, 1.0) - pessimism * se)


def price_walk(
    util: np.ndarray, rel: np.ndarray, se: np.ndarray, usable: np.ndarray, tie_se: float
) -> np.ndarray:
    """Per row, the candidate a walk down the price list keeps: it starts at the priciest usable
    candidate (the best utility among equally priced ones), and a cheaper one takes over only
    when its utility is ahead of the holder's by more than `tie_se` standard errors of their
    comparison. The one ahead counts its error in full, the other no more than that, so an
    estimate resting on nothing neither wins nor keeps a request through its own uncertainty.

    Why a walk and not ties with the leader: the choice then depends only on the candidates it
    meets. A candidate that does not take the request changes nothing; adding the cheapest
    (a free model) never moves a request between the others."""
    n, k = util.shape
    rows = np.arange(n)
    # Usable first, then by price, priciest first, then by utility, best first.
    order = np.lexsort((-util, -rel, ~usable), axis=1)
    choice = order[:, 0]
    for j in range(1, k):
        d = order[:, j]
        se_d, se_c = se[rows, d], se[rows, choice]
        gap = tie_se * np.sqrt(se_d**2 + np.minimum(se_c, se_d) ** 2)
        ahead = util[rows, d] > util[rows, choice] + gap
        choice = np.where(usable[rows, d] & (rel[rows, d] < rel[rows, choice]) & ahead, d, choice)
    return choice


def accept_answer(probability: np.ndarray | float, threshold: float) -> np.ndarray | bool:
    """Keep the cheap answer when the verifier's P(right) reaches the threshold."""
    return np.asarray(probability) >= threshold


@dataclass
class ScoreInput:
    """What the score stage sees for n requests over the policy's K candidate models."""

    domain_probs: np.ndarray  # (n, D)
    difficulty: np.ndarray  # (n,)
    gain: np.ndarray  # (n,)
    success: np.ndarray  # (n, K), NaN where a model has no success head
    eligible: np.ndarray  # (n, K) bool, after hard rules
    has_text: np.ndarray  # (n,) bool
    cost: np.ndarray | None = None  # (n, K) USD per request; needed with cost_weight
    # The evidence behind each success estimate (similar labelled prompts, `ScoreBatch.
    # evidence`), (n, K); None or NaN: unknown, and the estimate is compared as it is.
    evidence: np.ndarray | None = None
    # Replaces the policy's thresholds (a budget controller's moved threshold, router/serving/budget.py).
    escalation: Escalation | None = None
    # (K, K) bool: which two models' success estimates may be multiplied into the escalation
    # gain (learned on mostly the same prompts, `Scorer.success_comparable_`); None: all.
    comparable: np.ndarray | None = None


class CompiledPolicy:
    """A policy bound to a catalogue and a domain list: index arrays for fast selection."""

    def __init__(
        self,
        policy: Policy,
        catalogue: list[ModelSpec],
        domains: list[str],
        privacy: PrivacySpec | None = None,
    ) -> None:
        self.policy = policy
        self.domains = list(domains)
        # The privacy rule: the policy's own, else config.yaml's `privacy:` (given here).
        self.privacy = policy.privacy or privacy or PrivacySpec()
        self.trusted_names = frozenset(m.name for m in catalogue if m.trusted)
        by_name = {m.name: m for m in catalogue}
        self.models: list[ModelSpec] = [by_name[n] for n in policy.model_names()]
        self.names = [m.name for m in self.models]
        pos = {n: i for i, n in enumerate(self.names)}
        self.default_idx = [pos[n] for n in policy.default]
        self.large_idx = [pos[n] for n in policy.large]
        self.cheap_idx = [
            [pos[n] for n in policy.domains.get(d, policy.default)] for d in self.domains
        ]
        self.fallback_idx = [pos[n] for n in policy.fallbacks] if policy.fallbacks else None
        # Counterfactual: every request on the first large model.
        self.reference_large = self.models[self.large_idx[0]]

    # ---- hard rules -------------------------------------------------------------------------

    def eligible(self, facts: RequestFacts) -> tuple[np.ndarray, int | None, list[str]]:
        """Hard rules in order → (eligible mask, pinned index or None, rule notes)."""
        mask = np.ones(len(self.models), dtype=bool)
        notes: list[str] = []

        def narrow(
            keep: np.ndarray, what: str, param: str, code: str | None = None, lead: str = ""
        ) -> None:
            nonlocal mask
            if not (mask & keep).any():
                raise RequestError(
                    f"{lead + ' ' if lead else ''}no model in policy {self.policy.name!r} {what}; "
                    f"candidates were {[n for n, k in zip(self.names, mask, strict=True) if k]}",
                    param,
                    code,
                )
            if (mask & ~keep).any():
                notes.append(what)
            mask = mask & keep

        caps = [m.capabilities for m in self.models]
        # The privacy rule comes first: neither a pin nor a later rule may send private data
        # to a model the operator does not trust.
        action = self.privacy.action
        if facts.private and action != "off":
            kinds = ", ".join(facts.private)
            if action == "refuse":
                raise RequestError(
                    f"privacy rule: the prompt carries {kinds}; policy {self.policy.name!r} "
                    "refuses prompts with private data (privacy.action: refuse)",
                    "messages",
                    code="privacy_refused",
                )
            if action == "local":
                pin = facts.pinned_model
                if pin is not None and pin in self.names and pin not in self.trusted_names:
                    raise RequestError(
                        f"pinned model {pin!r} is not trusted and the prompt carries {kinds} "
                        "(privacy.action: local)",
                        "model",
                        code="privacy_refused",
                    )
                trusted = np.array([n in self.trusted_names for n in self.names])
                narrow(trusted, f"is trusted (privacy: the prompt carries {kinds})", "messages")
        for rule in self.policy.rules:
            if rule == "pin" and facts.pinned_model is not None:
                if facts.pinned_model not in self.names:
                    raise RequestError(
                        f"pinned model {facts.pinned_model!r} is not in policy "
                        f"{self.policy.name!r}",
                        "model",
                    )
                i = self.names.index(facts.pinned_model)
                if not mask[i]:
                    raise RequestError(
                        f"pinned model {facts.pinned_model!r} is excluded by an earlier rule "
                        f"({'; '.join(notes)})",
                        "model",
                    )
                return mask, i, notes
            if rule == "tools" and facts.needs_tools:
                narrow(np.array(["tools" in c for c in caps]), "supports tools", "tools")
            elif rule == "json" and facts.needs_json:
                narrow(
                    np.array(["json" in c for c in caps]), "supports JSON output", "response_format"
                )
            elif rule == "vision" and facts.has_image:
                narrow(np.array(["vision" in c for c in caps]), "accepts images", "messages")
            elif rule == "context_window":
                fits = np.array([facts.prompt_tokens <= m.context_window for m in self.models])
                # The widest window still in play (earlier rules leave at least one model).
                widest = max(m.context_window for m, k in zip(self.models, mask, strict=True) if k)
                narrow(
                    fits,
                    f"fits {facts.prompt_tokens} prompt tokens",
                    "messages",
                    CONTEXT_LENGTH_EXCEEDED,
                    lead=context_overflow(widest, facts.prompt_tokens),
                )
        if facts.stream:
            narrow(np.array(["streaming" in c for c in caps]), "supports streaming", "stream")
        return mask, None, notes

    # ---- score stage (vectorised) -----------------------------------------------------------

    def _first_eligible(self, order: list[int], eligible: np.ndarray) -> np.ndarray:
        """Per row: the first index of `order` that is eligible, or -1."""
        out = np.full(len(eligible), -1)
        for i in reversed(order):
            out = np.where(eligible[:, i], i, out)
        return out

    def select(self, s: ScoreInput) -> tuple[np.ndarray, np.ndarray]:
        """Per request: (candidate index, reason code)."""
        choice, reason, _ = self._select(s)
        return choice, reason

    def _select(self, s: ScoreInput) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`select`, and the escalation gain when the threshold rules computed it."""
        esc = s.escalation or self.policy.escalation
        if esc.cost_weight is not None:
            return (*self._select_utility(s, esc.cost_weight), None)
        return self._thresholds(s)

    def select_thresholds(self, s: ScoreInput) -> tuple[np.ndarray, np.ndarray]:
        """The threshold rules: cheap specialist unless unsure, hard or unlikely to succeed."""
        choice, reason, _ = self._thresholds(s)
        return choice, reason

    def _thresholds(self, s: ScoreInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        esc = s.escalation or self.policy.escalation
        conf = s.domain_probs.max(axis=1)
        cheap, no_success = self._cheap_candidates(s, esc)
        large = self._large_candidates(s)
        default = self._first_eligible(self.default_idx, s.eligible)
        gain = self._escalation_gain(s, esc, cheap, large)
        reason = np.where(no_success, NO_SUCCESS, np.where(cheap < 0, NO_CHEAP, CHEAP))
        reason = np.where((reason == CHEAP) & (s.difficulty > esc.max_difficulty), HARD, reason)
        if esc.max_gain is not None:
            reason = np.where((reason == CHEAP) & (gain > esc.max_gain), GAIN, reason)
        reason = np.where(
            (reason == CHEAP) & (conf < esc.min_domain_confidence), LOW_CONFIDENCE, reason
        )
        reason = np.where(~s.has_text, NO_TEXT, reason)
        choice = np.where(reason == CHEAP, cheap, large)
        choice = np.where(reason == NO_TEXT, np.where(default >= 0, default, large), choice)
        return choice, reason, gain

    def comparable_matrix(self, pairs: Collection[tuple[str, str]]) -> np.ndarray:
        """`ScoreInput.comparable` over this policy's candidates, from pairs of model names."""
        return np.array([[(a, b) in pairs for b in self.names] for a in self.names], dtype=bool)

    def escalation_gain(self, s: ScoreInput) -> np.ndarray:
        """Per request, the gain the threshold rules compare with `max_gain` (`gain_estimate`)."""
        esc = s.escalation or self.policy.escalation
        if esc.gain_estimate == "head":
            return s.gain
        cheap, _ = self._cheap_candidates(s, esc)
        return self._escalation_gain(s, esc, cheap, self._large_candidates(s))

    def _large_candidates(self, s: ScoreInput) -> np.ndarray:
        """Per request: the first eligible large model; with none eligible, the most expensive
        eligible model stands in."""
        large = self._first_eligible(self.large_idx, s.eligible)
        if (large < 0).any():
            price = np.array([m.input_price + m.output_price for m in self.models])
            priced = np.where(s.eligible, price[None, :], -1.0)
            large = np.where(large < 0, priced.argmax(axis=1), large)
        return large

    def _escalation_gain(
        self, s: ScoreInput, esc: Escalation, cheap: np.ndarray, large: np.ndarray
    ) -> np.ndarray:
        if esc.gain_estimate == "head":
            return s.gain
        rows = np.arange(len(s.gain))

        def success_of(idx: np.ndarray) -> np.ndarray:
            return np.where(idx >= 0, s.success[rows, np.maximum(idx, 0)], np.nan)

        p_large = success_of(large)
        if s.comparable is not None:
            # Estimates learned on different prompts: the gain head alone.
            paired = s.comparable[np.maximum(large, 0), np.maximum(cheap, 0)]
            p_large = np.where(paired, p_large, np.nan)
        return blended_gain(s.gain, p_large, success_of(cheap))

    def _cheap_candidates(self, s: ScoreInput, esc: Escalation) -> tuple[np.ndarray, np.ndarray]:
        """Per request: the domain's cheap candidate (-1: none), and whether success estimates
        ruled every cheap model out (`min_success`)."""
        n = len(s.difficulty)
        dom = s.domain_probs.argmax(axis=1)
        cheap = np.full(n, -1)
        for d in range(len(self.domains)):
            rows = dom == d
            if rows.any():
                cheap[rows] = self._first_eligible(self.cheap_idx[d], s.eligible[rows])
        # With success probabilities: the first cheap candidate predicted to succeed.
        no_success = np.zeros(n, dtype=bool)
        if esc.min_success is not None:
            bounded = lower_bound(s.success, s.evidence, esc.pessimism)
            for d in range(len(self.domains)):
                rows = np.flatnonzero(dom == d)
                if not len(rows):
                    continue
                order = self.cheap_idx[d]
                sub = bounded[np.ix_(rows, order)]
                known = ~np.isnan(sub)
                ok = s.eligible[np.ix_(rows, order)] & known & (sub >= esc.min_success)
                has_known = (known & s.eligible[np.ix_(rows, order)]).any(axis=1)
                first_ok = np.where(ok.any(axis=1), np.array(order)[ok.argmax(axis=1)], -1)
                cheap[rows] = np.where(has_known, first_ok, cheap[rows])
                no_success[rows] = has_known & (first_ok < 0)
        return cheap, no_success

    def _select_utility(self, s: ScoreInput, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """Per request: the best p(success) (pessimistic bound) − weight × cost relative to the
        first large model; with `tie_se`, the model the walk down the price list keeps
        (`price_walk`)."""
        if s.cost is None:
            raise ValueError("cost_weight needs per-request costs")
        ref = s.cost[:, self.large_idx[0]][:, None]
        rel = s.cost / np.where(ref > 0, ref, 1.0)
        usable = s.eligible & ~np.isnan(s.success)
        esc = s.escalation or self.policy.escalation
        # One standard error per estimate, for the bound and for the walk.
        se = standard_error(s.success, s.evidence)
        bounded = lower_bound(s.success, s.evidence, esc.pessimism, se)
        util = np.where(usable, np.nan_to_num(bounded) - weight * rel, -np.inf)
        best = util.argmax(axis=1)
        choice = best
        if esc.tie_se > 0:
            choice = price_walk(util, rel, se, usable, esc.tie_se)
        # Without any success estimate the threshold rules decide instead.
        fallback, fb_reason = self.select_thresholds(s)
        has = usable.any(axis=1) & s.has_text
        code = np.where(choice == best, UTILITY, TIED)
        return np.where(has, choice, fallback), np.where(has, code, fb_reason)

    # ---- one request ------------------------------------------------------------------------

    def fallbacks(self, chosen: int, eligible: np.ndarray, cheap: int) -> list[str]:
        """Escalating order after `chosen`: large models, then the cheap choice and default."""
        if self.fallback_idx is not None:
            order = self.fallback_idx
        else:
            order = self.large_idx + ([cheap] if cheap >= 0 else []) + self.default_idx
        seen = {chosen}
        out = []
        for i in order:
            if i not in seen and eligible[i]:
                seen.add(i)
                out.append(self.names[i])
        return out

    def decide(
        self,
        facts: RequestFacts,
        domain_probs: np.ndarray | None,
        difficulty: float | None,
        success: dict[str, float],
        gain: float | None = None,
        escalation: Escalation | None = None,
        evidence: dict[str, dict[str, float]] | None = None,
        unprofiled: dict[str, str] | None = None,
        comparable: Collection[tuple[str, str]] | None = None,
    ) -> Decision:
        """The Decision for one request. `domain_probs` is None when there was no text.

        `escalation` replaces the policy's thresholds (a budget controller supplies it).
        `evidence` gives, per model with a success estimate, its labelled `rows` and its
        similar labelled prompts (`neighbours`); `unprofiled` names the stand-in of each
        catalogue model the scorer has no rows for (both go into the Decision as they are).
        `comparable` lists the pairs of models whose success estimates may be multiplied into
        the escalation gain (`ScoreInput.comparable`; None: every pair)."""
        mask, pinned, notes = self.eligible(facts)
        rule_note = f" (hard rules: {', '.join(notes)})" if notes else ""
        has_text = domain_probs is not None
        probs = domain_probs if has_text else np.full(len(self.domains), 1 / len(self.domains))
        dom_i = int(np.argmax(probs))
        domain = self.domains[dom_i] if has_text else None
        conf = float(probs[dom_i]) if has_text else None
        succ_row = np.array([success.get(n, np.nan) for n in self.names])
        evidence = evidence or {}
        ev_row = np.array([evidence.get(n, {}).get("neighbours", np.nan) for n in self.names])
        s = ScoreInput(
            domain_probs=probs[None, :],
            difficulty=np.array([difficulty if difficulty is not None else 0.0]),
            gain=np.array([gain if gain is not None else 0.0]),
            success=succ_row[None, :],
            eligible=mask[None, :],
            has_text=np.array([has_text]),
            cost=np.array(
                [[m.cost(facts.prompt_tokens, facts.output_tokens) for m in self.models]]
            ),
            escalation=escalation,
            evidence=ev_row[None, :],
            comparable=None if comparable is None else self.comparable_matrix(comparable),
        )
        choice, code, compared = self._select(s)
        esc = escalation or self.policy.escalation
        # The receipt's gain is the one the thresholds compare (`gain_estimate`).
        if gain is not None:
            gain = float((compared if compared is not None else self.escalation_gain(s))[0])
        bound = lower_bound(succ_row, ev_row, esc.pessimism)
        i, code = int(choice[0]), int(code[0])
        cheap = self._first_eligible(self.cheap_idx[dom_i], mask[None, :])[0]
        if pinned is not None:
            i = pinned
            reason = f"pinned to {self.names[i]} by the request"
        else:
            reason = self._reason(code, i, domain, conf, difficulty, gain, bound, escalation)
        model = self.models[i]
        escalated = pinned is None and (
            code in (LOW_CONFIDENCE, HARD, GAIN, NO_SUCCESS, NO_CHEAP)
            or (code in (UTILITY, TIED) and model.tier == "large")
        )
        decision = Decision(
            model=model.name,
            tier=model.tier,
            policy=self.policy.name,
            domain=domain,
            domain_confidence=round(conf, 4) if conf is not None else None,
            difficulty=round(float(difficulty), 4) if difficulty is not None else None,
            gain=round(float(gain), 4) if gain is not None else None,
            success={
                n: round(float(p), 4)
                for n, p in zip(self.names, succ_row, strict=True)
                if not np.isnan(p)
            },
            reason=reason + rule_note,
            fallbacks=self.fallbacks(i, mask, int(cheap)),
            cost_estimate=model.cost(facts.prompt_tokens, facts.output_tokens),
            large_cost_estimate=self.reference_large.cost(facts.prompt_tokens, facts.output_tokens),
            escalated=escalated,
            evidence={
                n: {**evidence[n], "lower": round(float(b), 4)}
                for n, b in zip(self.names, bound, strict=True)
                if n in evidence and not np.isnan(b)
            },
            unprofiled={n: m for n, m in (unprofiled or {}).items() if n in self.names},
        )
        if facts.private and self.privacy.action != "off":
            decision.privacy = {
                "action": self.privacy.action,
                "rules": list(facts.private),
                "redacted": self.privacy.action == "redact",
            }
        if self.policy.cascade is not None and pinned is None and has_text:
            decision = self.cascade_decision(decision, facts, mask, dom_i, difficulty, succ_row)
        return decision

    # ---- cascade (the decision only; router/serving/cascade.py calls, judges and escalates) ---------

    def cascade_decision(
        self,
        decision: Decision,
        facts: RequestFacts,
        mask: np.ndarray,
        dom_i: int,
        difficulty: float | None,
        succ_row: np.ndarray,
    ) -> Decision:
        """`decision` under the policy's `cascade:`: cheap answer first and judged, cheap
        answer unchecked, or straight to the large model (hybrid band)."""
        cas = self.policy.cascade
        order = [self.names.index(n) for n in cas.models] if cas.models else self.cheap_idx[dom_i]
        first = int(self._first_eligible(order, mask[None, :])[0])
        large = int(self._first_eligible(self.large_idx, mask[None, :])[0])
        if first < 0 or large < 0 or first == large:
            return decision  # nothing to cascade between: routed as without a cascade
        if (
            facts.private
            and self.privacy.action == "local"
            and cas.verifier == "llm"
            and cas.judge not in self.trusted_names
        ):
            return decision  # the judge would read the private prompt: no cascade
        known = not np.isnan(succ_row[first])
        prompt_p = float(succ_row[first]) if known else 1.0 - float(difficulty or 0.0)
        mode = int(cascade_modes(np.array([prompt_p]), cas.threshold, cas.band)[0])
        i = large if mode == STRAIGHT_TO_LARGE else first
        model = self.models[i]
        band = (
            f"prompt P(right) {prompt_p:.2f}"
            if cas.band is None
            else f"prompt P(right) {prompt_p:.2f}, band {cas.threshold:g} ± {cas.band:g}"
        )
        verifier = f"llm:{cas.judge}" if cas.verifier == "llm" else cas.verifier
        if mode == JUDGED:
            reason = (
                f"cascade: {model.name} answers first, the verifier judges it "
                f"(accept at P(right) >= {cas.threshold:g}; {band})"
            )
        elif mode == UNCHECKED:
            reason = f"cascade hybrid: {band} → {model.name}, answer unchecked"
        else:
            reason = f"cascade hybrid: {band} → straight to {model.name}"
        cheap_idx = int(self._first_eligible(self.cheap_idx[dom_i], mask[None, :])[0])
        return replace(
            decision,
            model=model.name,
            tier=model.tier,
            reason=reason,
            fallbacks=self.fallbacks(i, mask, cheap_idx),
            cost_estimate=model.cost(facts.prompt_tokens, facts.output_tokens),
            escalated=mode == STRAIGHT_TO_LARGE,
            cascade={
                "mode": CASCADE_MODE_NAMES[mode],
                "first": self.names[first],
                "large": self.names[large],
                "verifier": "default" if verifier == "default" else verifier.rsplit("/", 1)[-1],
                "threshold": cas.threshold,
                "band": cas.band,
                "prompt_probability": round(prompt_p, 4),
                "probability": None,
                "escalated": mode == STRAIGHT_TO_LARGE,
                "cheap_cost": None,
                "large_cost": None,
            },
        )

    def _reason(self, code, i, domain, conf, difficulty, gain, succ, esc=None) -> str:
        esc = esc or self.policy.escalation
        name = self.names[i]
        if code == CHEAP:
            spec = "specialist" if domain in self.policy.domains else "default model"
            why = f"difficulty {difficulty:.2f} ≤ {esc.max_difficulty}"
            if esc.max_gain is not None and gain is not None:
                why = f"escalation gain {gain:.2f} ≤ {esc.max_gain}"
            return f"domain {domain} ({conf:.2f}) → {spec} {name}; {why}"
        if code == HARD:
            return (
                f"difficulty {difficulty:.2f} > max_difficulty {esc.max_difficulty} "
                f"→ escalated to {name}"
            )
        if code == GAIN:
            return f"escalation gain {gain:.2f} > max_gain {esc.max_gain} → escalated to {name}"
        if code == LOW_CONFIDENCE:
            return (
                f"domain confidence {conf:.2f} < min_domain_confidence "
                f"{esc.min_domain_confidence} → escalated to {name}"
            )
        if code == NO_SUCCESS:
            return (
                f"no cheap model predicted to succeed with p ≥ {esc.min_success} "
                f"→ escalated to {name}"
            )
        if code == UTILITY:
            p = succ[i]
            return (
                f"best p(success) (pessimistic, −{esc.pessimism:g} s.e.) − {esc.cost_weight} "
                f"× relative cost: {name} "
                f"(p={p:.2f}, cost {self.models[i].input_price:g}/{self.models[i].output_price:g} $/M)"
            )
        if code == TIED:
            p = succ[i]
            return (
                f"kept {name} (p={p:.2f}): down the price list, a cheaper candidate takes over "
                f"only when more than {esc.tie_se:g} s.e. ahead on p(success) (pessimistic, "
                f"−{esc.pessimism:g} s.e.) − {esc.cost_weight} × relative cost, and none is"
            )
        if code == NO_CHEAP:
            return f"no eligible cheap model for domain {domain} → {name}"
        return f"no text to score → default {name}"
