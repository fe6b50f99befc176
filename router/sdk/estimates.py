"""Which scorer column estimates each catalogue model's success, and which two estimates may
be compared: a model without rows of its own takes a stand-in the config names, and heads
learned on different prompts carry different base rates."""

from __future__ import annotations

import logging
from typing import Any

from router.core.config import ConfigError, RouterConfig, did_you_mean

log = logging.getLogger("router.sdk")


def success_columns(
    config: RouterConfig, scorer_models: list[str]
) -> tuple[dict[str, int], dict[str, str]]:
    """Per catalogue model, the scorer's success column that estimates it; and, for models
    with no rows of their own, the stand-in used ("none": no estimate at all)."""
    cols = {m: i for i, m in enumerate(scorer_models)}
    success_col: dict[str, int] = {}
    unprofiled: dict[str, str] = {}
    for m in config.models:
        own = m.profile or m.name
        if m.profile is not None and m.profile not in cols and m.name in cols:
            # `router profile` writes a model's scores under its catalogue name, and `router
            # add-model` joins it under that name: its own rows, not a stand-in's.
            log.warning(
                "models[%s].profile: %r is not a model of the scorer, but its catalogue name %r "
                "is (router profile and router add-model use that name): its own estimate is "
                "used; remove `profile:`",
                m.name,
                m.profile,
                m.name,
            )
            own = m.name
        elif m.profile not in (None, m.name) and m.profile in cols and m.name in cols:
            log.warning(
                "models[%s].profile: the estimate of %r is used, though the scorer also has one under "
                "its catalogue name %r (router profile and router add-model use that name); "
                "remove `profile:` to route it on its own",
                m.name,
                m.profile,
                m.name,
            )
        if own in cols:
            success_col[m.name] = cols[own]
            continue
        if m.profile is not None:
            # Named, yet the scorer has no such model: a typo, or a profile not joined yet
            # (router add-model). Said once, here: the receipts only say `unprofiled`.
            log.warning(
                "models[%s].profile: %r is not a model of the scorer%s; it has no estimate of "
                "its own until profiled and joined (router add-model)",
                m.name,
                m.profile,
                did_you_mean(m.profile, cols),
            )
        stand_in = m.stand_in or getattr(config.stand_ins, m.tier)
        where = f"models[{m.name}].stand_in" if m.stand_in else f"stand_ins.{m.tier}"
        if stand_in is not None and stand_in not in cols:
            raise ConfigError(
                config.file or "the config (built in code, not read from a file)",
                where,
                f"{stand_in!r} is not a model of the scorer{did_you_mean(stand_in, cols)}; "
                f"it knows {sorted(cols)}",
            )
        unprofiled[m.name] = stand_in or "none"
        if stand_in is not None:
            success_col[m.name] = cols[stand_in]
    return success_col, unprofiled


def comparable_pairs(success_col: dict[str, int], scorer: Any) -> frozenset[tuple[str, str]] | None:
    """The pairs of catalogue models whose success estimates (by their scorer columns) may be
    multiplied into the escalation gain (`Scorer.success_comparable_`); None when the scorer
    does not say, and every pair may."""
    table = getattr(scorer, "success_comparable_", None)
    if table is None:
        return None
    return frozenset(
        (a, b) for a, ca in success_col.items() for b, cb in success_col.items() if table[ca, cb]
    )


def incomparable_pairs(
    models: list[str], success_col: dict[str, int], comparable: frozenset[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    """The pairs of `models` with success estimates that were learned on different prompts
    (`comparable_pairs`): a head carries its training set's base rate, so comparing the two
    compares their data as much as the request."""
    if comparable is None:
        return []
    known = [m for m in models if m in success_col]
    return [(a, b) for i, a in enumerate(known) for b in known[i + 1 :] if (a, b) not in comparable]
