"""Service settings: explicit arguments, then ``NBOPS_*`` variables, then the project
(the model's name from env.yaml), then defaults."""

from __future__ import annotations

import os
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

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "alias": env.get("NBOPS_ALIAS", "champion"),
            "token": env.get("NBOPS_API_TOKEN") or None,
            "log_url": env.get("NBOPS_PREDICTION_LOG") or None,
            "max_rows": int(env.get("NBOPS_MAX_ROWS", "1000")),
            "max_body_bytes": int(env.get("NBOPS_MAX_BODY_BYTES", str(1_048_576))),
            "unseen_categories": env.get("NBOPS_UNSEEN_CATEGORIES", "accept"),
            "reload_seconds": float(env.get("NBOPS_RELOAD_SECONDS", "10")),
            "canary": float(env.get("NBOPS_CANARY", "0")),
            "shadow": env.get("NBOPS_SHADOW", "").lower() in {"1", "true", "yes"},
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
        if self.unseen_categories not in ("accept", "reject"):
            raise ConfigError(
                f"NBOPS_UNSEEN_CATEGORIES must be accept or reject, got {self.unseen_categories!r}."
            )
        if not 0.0 <= self.canary <= 1.0:
            raise ConfigError(
                f"--canary must be a share of traffic between 0 and 1 (e.g. 0.1 for 10%), got {self.canary}."
            )
        if self.max_rows < 1:
            raise ConfigError(f"NBOPS_MAX_ROWS must be at least 1, got {self.max_rows}.")

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
        }
        if self.token:
            out["NBOPS_API_TOKEN"] = self.token
        if self.log_url:
            out["NBOPS_PREDICTION_LOG"] = self.log_url
        return out
