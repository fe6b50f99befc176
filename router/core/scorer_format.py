"""A saved scorer's directory: `scorer.json` (metadata, vocabulary, calibration) and
`weights.npz` (arrays, loaded with `allow_pickle=False`: nothing in it is executed on load), and
how the older formats still load. The stack's column layout is part of the format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from router.core import artifact_dir
from router.core.encoder import interchangeable
from router.core.irt import SharedDifficulty

FORMAT_VERSION = 4
# Format 2 (no shared-difficulty model, no evidence) and 3 (no source prior) still load: their
# stacks gain zero weights.
READABLE_VERSIONS = (2, 3, 4)
# The stack's columns: a weight per component, then the bias.
EMB, TEXT, KNN, SHARED, SOURCE, BIAS = range(6)


class ScorerError(ValueError):
    """A scorer cannot be trained or loaded; the message says why."""


# `scorer` below is a fitted `router.core.scorer.Scorer`, typed `Any` here: that module imports
# this one, and the modules of a package import no circle (import-linter).


def write(scorer: Any, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `scorer`'s `scorer.json` and `weights.npz` into directory `path`."""
    scorer._check_fitted()
    arrays = {
        "domain_W": scorer.domain_W_.astype(np.float32),
        "domain_b": scorer.domain_b_.astype(np.float32),
        "emb_W": scorer.emb_W_.astype(np.float32),
        "emb_b": scorer.emb_b_.astype(np.float32),
        "text_W": scorer.text_W_.astype(np.float32),
        "text_b": scorer.text_b_.astype(np.float32),
        "stack": scorer.stack_.astype(np.float64),
        "idf": scorer.idf_.astype(np.float64),
        "knn_X": scorer.knn_X_.astype(np.float16),
        "knn_Y": scorer.knn_Y_.astype(np.float16),
    }
    if getattr(scorer, "knn_S_", None) is not None:
        arrays["knn_S"] = scorer.knn_S_.astype(np.float16)
    if getattr(scorer, "train_hashes_", None) is not None:
        arrays["train_hashes"] = scorer.train_hashes_.astype(np.uint64)
    if scorer.shared_ is not None:
        arrays.update(scorer.shared_.to_arrays())
    vocab = sorted(scorer.vocabulary_, key=scorer.vocabulary_.__getitem__)
    meta = {
        "format_version": FORMAT_VERSION,
        "encoder": scorer.encoder_identity_,
        "domains": scorer.domains_,
        "models": scorer.models_,
        "heads": scorer.heads_,
        # The design as fitted: an ablated scorer may have let its shared model go. The seed is
        # not recorded (a loaded scorer takes the default).
        "params": {
            **{k: v for k, v in scorer.get_params().items() if k != "random_state"},
            "shared_dims": scorer.shared_dims if scorer.shared_ is not None else None,
            "source_prior": getattr(scorer, "knn_S_", None) is not None,
        },
        "cheap_models": scorer.cheap_models_,
        # Models that joined from their profiled rows (`add_model`), and the strength of
        # the correction each one's rows bought (0: none).
        "added_models": scorer.added_models_,
        "join_C": scorer.join_C_,
        "domain_temperature": scorer.domain_T_,
        # Set when no training row had a domain label and another scorer's head stood in.
        "domain_head_from": getattr(scorer, "domain_head_from_", None),
        "n_train": scorer.n_train_,
        "sim_floor": getattr(scorer, "sim_floor_", None),
        # Absent in scorers saved before the drift alarm existed.
        **(
            {"training_distributions": scorer.training_distributions_}
            if getattr(scorer, "training_distributions_", None)
            else {}
        ),
        **(extra or {}),
        "vocabulary": vocab,
    }
    return artifact_dir.write(path, "scorer.json", meta, arrays)


def read_domain_head(
    path: str | Path, encoder_identity: str
) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """A saved scorer's domain head: (domains, W, b, temperature). Refused when it was trained
    with another encoder than `encoder_identity`: its weights read that encoder's vectors."""
    meta, arrays = artifact_dir.read(path, "scorer.json", "scorer", ScorerError)
    if not interchangeable(str(meta.get("encoder")), encoder_identity):
        raise ScorerError(
            f"no row has a domain label (set 'domain' or a known 'source'), and the domain "
            f"head of {path}, which would stand in, was trained with encoder "
            f"{meta.get('encoder')!r}, not {encoder_identity!r}"
        )
    return (
        list(meta["domains"]),
        arrays["domain_W"].astype(np.float64),
        arrays["domain_b"].astype(np.float64),
        float(meta["domain_temperature"]),
    )


def read(cls: type, path: str | Path, encoder_identity: str | None = None) -> Any:
    """Load a saved scorer as a `cls`; refuse one trained with a different encoder."""
    meta, arrays = artifact_dir.read(path, "scorer.json", "scorer", ScorerError)
    if not isinstance(meta, dict) or meta.get("format_version") not in READABLE_VERSIONS:
        raise ScorerError(
            f"{path}/scorer.json: format_version {meta.get('format_version') if isinstance(meta, dict) else '?'}"
            f" is not {FORMAT_VERSION}; retrain with `router train`"
        )
    if encoder_identity is not None and not interchangeable(
        str(meta.get("encoder")), encoder_identity
    ):
        raise ScorerError(
            f"{path}: trained with encoder {meta.get('encoder')!r}, but the router uses "
            f"{encoder_identity!r}; retrain with `router train` or set encoder to match"
        )
    try:
        # Saved before knn_shrink, the source prior or the shared difficulty head existed:
        # the design it was fitted with (the plain neighbour mean, no source prior, the
        # stacked difficulty).
        scorer = cls(
            **{
                "knn_shrink": 0.0,
                "source_prior": False,
                "difficulty": "stack",
                **meta["params"],
            }
        )
        scorer.encoder_identity_ = meta["encoder"]
        scorer.domains_ = list(meta["domains"])
        scorer.models_ = list(meta["models"])
        scorer.heads_ = list(meta["heads"])
        scorer.domain_T_ = float(meta["domain_temperature"])
        scorer.domain_head_from_ = meta.get("domain_head_from")
        scorer.n_train_ = int(meta.get("n_train", 0))
        # None for an artifact saved before evidence was kept: its estimates carry none.
        floor = meta.get("sim_floor")
        scorer.sim_floor_ = None if floor is None else float(floor)
        # None for an artifact saved before scorers recorded them: no drift alarm then.
        scorer.training_distributions_ = meta.get("training_distributions")
        scorer.vocabulary_ = {t: i for i, t in enumerate(meta["vocabulary"])}
        f64 = {
            k: arrays[k].astype(np.float64)
            for k in arrays
            if k not in ("knn_X", "knn_Y", "knn_S", "train_hashes")
        }
        # Artifacts saved before training hashes were recorded have none: unknown, not empty.
        hashes = arrays.get("train_hashes")
        scorer.train_hashes_ = None if hashes is None else hashes.astype(np.uint64)
        scorer.domain_W_, scorer.domain_b_ = f64["domain_W"], f64["domain_b"]
        scorer.emb_W_, scorer.emb_b_ = f64["emb_W"], f64["emb_b"]
        scorer.text_W_, scorer.text_b_ = f64["text_W"], f64["text_b"]
        scorer.stack_, scorer.idf_ = f64["stack"], f64["idf"]
        if scorer.stack_.shape[1:] == (4,):  # format 2: no shared model
            scorer.stack_ = np.insert(scorer.stack_, SHARED, 0.0, axis=1)
        if scorer.stack_.shape[1:] == (5,):  # format 3: no source prior
            scorer.stack_ = np.insert(scorer.stack_, SOURCE, 0.0, axis=1)
        scorer.shared_ = SharedDifficulty.from_arrays(arrays) if "irt_A" in arrays else None
        scorer.cheap_models_ = list(meta.get("cheap_models", []))
        # Models that joined before a correction existed had none (C 0).
        scorer.join_C_ = {
            **{str(m): 0.0 for m in meta.get("added_models", [])},
            **{str(k): float(v) for k, v in meta.get("join_C", {}).items()},
        }
        scorer.knn_X_ = arrays["knn_X"].astype(np.float32)
        scorer.knn_Y_ = arrays["knn_Y"].astype(np.float32)
        scorer.knn_S_ = arrays["knn_S"].astype(np.float32) if "knn_S" in arrays else None
        scorer.meta_ = {k: v for k, v in meta.items() if k != "vocabulary"}
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ScorerError(f"{path}: incomplete scorer files (missing or bad {e})") from None
    H, D, V = len(scorer.heads_), len(scorer.domains_), len(scorer.vocabulary_)
    ok = (
        scorer.domain_W_.shape[0] == D
        and scorer.emb_W_.shape[0] == H
        and scorer.text_W_.shape == (H, V)
        and scorer.stack_.shape == (H, BIAS + 1)
        and (scorer.knn_S_ is None or scorer.knn_S_.shape == scorer.knn_Y_.shape)
        and (scorer.knn_S_ is not None or not scorer.stack_[:, SOURCE].any())
        and (scorer.shared_ is None or scorer.shared_.theta_.shape[0] == len(scorer.models_))
        and len(scorer.idf_) == V
        and scorer.knn_Y_.shape == (len(scorer.knn_X_), H)
        and H == 2 + len(scorer.models_)
    )
    if not ok:
        raise ScorerError(f"{path}: weights do not match scorer.json")
    scorer._prepare()
    return scorer
