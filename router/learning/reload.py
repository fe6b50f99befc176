"""Hot reload: a new Router from the same config file, sharing what must outlive a reload.

`reload_router(old)` re-reads the config file, its policies and its scorer and returns a new
`Router`; `old` is left untouched, so requests that already hold it finish on the old scorer,
policies and catalogue, and a config that fails to load changes nothing (the error says why).
The caller swaps the new router in with a single assignment (the proxy does, in
router/server/admin.py).

Shared with the old router, never rebuilt: the shared state store, the circuit breakers (their
counts and listeners), the local GGUF model servers (a change to those needs a restart), the
SDK's decision log, the encoder when its settings are unchanged, the scorer when its files are,
budget controllers whose budget is unchanged, and the drift window when the scorer is the same.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.core.config import ConfigError, check_default_policy, load_config, load_policies
from router.core.data import domain_names
from router.core.encoder import load_encoder
from router.core.scorer import Scorer, configured_scorer_path


class ReloadError(ValueError):
    """The new configuration cannot be swapped in; the old one keeps serving."""


# Scorer object -> (resolved directory, files hash) as they were when it was loaded. The files
# on disk are no witness: `router retrain` flips `scorers/current`, so the configured path and
# its hash read now describe the new version, not the one the old router holds.
_LOADED: weakref.WeakKeyDictionary[Any, tuple[Path, str]] = weakref.WeakKeyDictionary()


def _scorer_files(scorer_dir: Path) -> list[Path]:
    return [scorer_dir / "scorer.json", scorer_dir / "weights.npz"]


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def config_files(config_path: Path, config: Any) -> list[Path]:
    """The config file and every policy file it loads, in a stable order."""
    pol_dir = config_path.parent / config.policies_dir
    return [config_path, *sorted(pol_dir.glob("*.yaml"))]


def versions_of(router: Any, loaded_at: float | None = None) -> dict[str, Any]:
    """What /ready shows: the scorer's version and hash, the config's hash, when it loaded."""
    path = router.config_path
    base = path.parent if path is not None else router.base_dir
    scorer_dir = configured_scorer_path(router.config.scorer, base).resolve()
    meta = getattr(router.scorer, "meta_", {}) or {}
    loaded = _LOADED.get(router.scorer)
    if loaded is not None:
        scorer_dir, scorer_hash = loaded
    else:
        # First sight (the proxy asks right after it loaded): what is on disk is what it holds.
        try:
            scorer_hash = _digest(_scorer_files(scorer_dir))
            _LOADED[router.scorer] = (scorer_dir, scorer_hash)
        except OSError:
            scorer_hash = None
        except TypeError:  # an object that cannot be weakly referenced: report, do not record
            pass
    try:
        config_hash = _digest(config_files(path, router.config)) if path is not None else None
    except OSError:
        config_hash = None
    when = loaded_at if loaded_at is not None else time.time()
    return {
        "scorer": {
            "path": str(scorer_dir),
            # A retrained scorer's version (router retrain writes it), else its directory.
            "version": str(meta.get("version") or scorer_dir.name),
            "hash": scorer_hash,
            "n_train": getattr(router.scorer, "n_train_", None),
        },
        "config": {"path": str(path) if path is not None else None, "hash": config_hash},
        "loaded_at": datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds"),
    }


def reload_router(old: Any, path: str | Path | None = None) -> Any:
    """A new Router from `path` (default: the file `old` was loaded from).

    Raises ConfigError, ScorerError or ReloadError (all ValueErrors) and changes nothing when
    the new configuration is not usable."""
    from router.sdk.router import Router

    if path is None and old.config_path is None:
        raise ReloadError("this router was not loaded from a config file; nothing to re-read")
    path = Path(path or old.config_path).resolve()
    config = load_config(path)
    base = path.parent
    policies = load_policies(base / config.policies_dir, config, domain_names())
    check_default_policy(path, config, policies)  # as Router.from_config: the keys' policies too
    local_old = [m for m in old.config.models if m.is_local]
    local_new = [m for m in config.models if m.is_local]
    if local_old != local_new:
        raise ReloadError(
            "models: the local (gguf) models changed; their llama.cpp servers start with the "
            "proxy, so restart it to load them"
        )
    if config.state != old.config.state:
        raise ReloadError("state: the shared-state URL changed; restart to connect to it")
    if config.encoder == old.config.encoder:
        encoder = old.encoder
    else:
        encoder = load_encoder(
            config.encoder.name,
            config.encoder.max_tokens,
            config.encoder.cache_size,
            threads=config.encoder.threads,
        )
    # Resolved once: `scorers/current` may be flipped again while this runs; the version
    # directories it points at are never rewritten.
    scorer_dir = configured_scorer_path(config.scorer, base).resolve()
    try:
        new_hash = _digest(_scorer_files(scorer_dir))
    except OSError:
        new_hash = None  # Scorer.load names what is missing
    # The old scorer is kept only if it was loaded from these very files; when that is not
    # known (a Router never seen by versions_of), loading again is the safe side.
    same_scorer = (
        encoder is old.encoder
        and new_hash is not None
        and _LOADED.get(old.scorer) == (scorer_dir, new_hash)
    )
    if same_scorer:
        scorer = old.scorer
    else:
        scorer = Scorer.load(scorer_dir, encoder.identity)
        if new_hash is not None:
            _LOADED[scorer] = (scorer_dir, new_hash)

    new = Router.__new__(Router)
    new.state = old.state  # Router.__init__ keeps a store it is given
    if config.cache == old.config.cache and encoder is old.encoder:
        # The same cache settings and vectors: the cached answers stay valid.
        new.response_cache = old.response_cache
    try:
        Router.__init__(new, config, policies, scorer, encoder)
    except ValueError as e:  # RequestError: default_policy without a policy file
        raise ConfigError(path, "default_policy", str(e)) from None
    new.breakers = old.breakers
    new.local = old.local
    new.base_dir = base
    new.config_path = path
    new.decision_log = getattr(old, "decision_log", None)
    new.budgets = new.budgets.adopt(old.budgets)
    if same_scorer and new.drift.reference == old.drift.reference:
        if new.drift.settings == old.drift.settings:
            new.drift = old.drift
        else:  # new `drift:` settings apply; the decisions seen so far still count
            new.drift.adopt(old.drift)
    new.warm_up()
    # Last: the breakers are shared with the old router, which must not change if this fails.
    new.breakers.failures = config.breaker.failures
    new.breakers.cooldown_s = config.breaker.cooldown_s
    return new
