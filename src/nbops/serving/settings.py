"""Service settings: explicit arguments, then ``NBOPS_*`` variables, then the project
(the model's name from env.yaml), then defaults."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbops.errors import ConfigError
from nbops.project import model_name

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    root: Path = field(default_factory=Path.cwd)
    model: str = "churn"
    alias: str = "champion"
    #: Bearer token required on every endpoint but /health and /ready; None = open.
    token: str | None = None
    #: SQLAlchemy URL of the prediction log; default: SQLite in the project's .nbops/.
    log_url: str | None = None
    max_rows: int = 1000
    max_body_bytes: int = 1_048_576
    #: "accept" (unseen categories are encoded as infrequent) or "reject" (422).
    unseen_categories: str = "accept"
    #: Seconds between checks of the alias (a promotion or rollback is picked up).
    reload_seconds: float = 10.0
    #: Share of traffic (0..1) routed to the ``challenger``, sticky by ``X-Routing-Key``.
    canary: float = 0.0
    #: Score a copy of every request with the ``challenger`` and log it; answer with the champion.
    shadow: bool = False
    #: Shadow requests waiting at most; beyond it a copy is skipped (and counted).
    shadow_queue: int = 1000
    #: Longest wait before an answered prediction is written to the log.
    log_flush_seconds: float = 0.05
    #: Log entries waiting at most (a database outage); beyond it new ones are dropped, counted.
    log_queue: int = 100_000
    #: Longest pause between attempts while the log database fails (backoff from 50 ms).
    log_retry_seconds: float = 2.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "alias": env.get("NBOPS_ALIAS", "champion"),
            "token": env.get("NBOPS_API_TOKEN") or None,
            "log_url": env.get("NBOPS_PREDICTION_LOG") or None,
            "max_rows": _number("NBOPS_MAX_ROWS", "1000", int),
            "max_body_bytes": _number("NBOPS_MAX_BODY_BYTES", str(1_048_576), int),
            "unseen_categories": env.get("NBOPS_UNSEEN_CATEGORIES", "accept"),
            "reload_seconds": _number("NBOPS_RELOAD_SECONDS", "10", float),
            "canary": _number("NBOPS_CANARY", "0", float),
            "shadow": env.get("NBOPS_SHADOW", "").lower() in {"1", "true", "yes"},
            "shadow_queue": _number("NBOPS_SHADOW_QUEUE", "1000", int),
            "log_flush_seconds": _number("NBOPS_LOG_FLUSH_SECONDS", "0.05", float),
            "log_queue": _number("NBOPS_LOG_QUEUE", "100000", int),
            "log_retry_seconds": _number("NBOPS_LOG_RETRY_SECONDS", "2", float),
        }
        if env.get("NBOPS_PROJECT"):
            values["root"] = Path(env["NBOPS_PROJECT"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        # One source for the name: the option, NBOPS_MODEL, then the project's env.yaml.
        name = model_name(values.pop("model", None), root=values.get("root"), required=False)  # type: ignore[arg-type]
        if name:
            values["model"] = name
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings the service cannot run with, naming the variable to fix."""
        if self.unseen_categories not in ("accept", "reject"):
            raise ConfigError(
                f"NBOPS_UNSEEN_CATEGORIES must be accept or reject, got {self.unseen_categories!r}."
            )
        if not 0.0 <= self.canary <= 1.0:
            raise ConfigError(
                f"--canary must be a share of traffic between 0 and 1 (e.g. 0.1 for 10%), got {self.canary}."
            )
        for name, value in (
            ("NBOPS_MAX_ROWS", self.max_rows),
            ("NBOPS_MAX_BODY_BYTES", self.max_body_bytes),
            ("NBOPS_SHADOW_QUEUE", self.shadow_queue),
            ("NBOPS_LOG_QUEUE", self.log_queue),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}.")
        for name, seconds in (
            ("NBOPS_RELOAD_SECONDS", self.reload_seconds),
            ("NBOPS_LOG_FLUSH_SECONDS", self.log_flush_seconds),
            ("NBOPS_LOG_RETRY_SECONDS", self.log_retry_seconds),
        ):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ConfigError(
                    f"{name} must be a number of seconds greater than 0, got {seconds}: "
                    "unset it for the default."
                )

    @property
    def prediction_log_url(self) -> str:
        if self.log_url:
            return self.log_url
        return f"sqlite:///{(self.root / '.nbops' / 'predictions.db').resolve()}"

    def env_for_workers(self) -> dict[str, str]:
        """The settings as environment variables, for uvicorn worker processes."""
        out = {
            "NBOPS_PROJECT": str(self.root),
            "NBOPS_MODEL": self.model,
            "NBOPS_ALIAS": self.alias,
            "NBOPS_MAX_ROWS": str(self.max_rows),
            "NBOPS_MAX_BODY_BYTES": str(self.max_body_bytes),
            "NBOPS_UNSEEN_CATEGORIES": self.unseen_categories,
            "NBOPS_RELOAD_SECONDS": str(self.reload_seconds),
            "NBOPS_CANARY": str(self.canary),
            "NBOPS_SHADOW": "true" if self.shadow else "false",
            "NBOPS_SHADOW_QUEUE": str(self.shadow_queue),
            "NBOPS_LOG_FLUSH_SECONDS": str(self.log_flush_seconds),
            "NBOPS_LOG_QUEUE": str(self.log_queue),
            "NBOPS_LOG_RETRY_SECONDS": str(self.log_retry_seconds),
        }
        if self.token:
            out["NBOPS_API_TOKEN"] = self.token
        if self.log_url:
            out["NBOPS_PREDICTION_LOG"] = self.log_url
        return out


def _number(name: str, default: str, kind: Callable[[str], float]) -> object:
    raw = os.environ.get(name, default)
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(
            f"{name} must be {what}, got {raw!r}: unset it for the default."
        ) from None
