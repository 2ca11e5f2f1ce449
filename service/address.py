"""Where the service listens, ``M2S_HOST`` and ``M2S_PORT``: the part of the settings a local probe needs.

:class:`ServiceAddress` is the base of :class:`service.config.Settings`, so ``m2s-serve`` and the
container health check (:mod:`service.healthcheck`) read these variables through one definition: the
same names, defaults and validation. It lives apart from :mod:`service.config` because that module
imports the bundle format (numpy, scipy); this one needs only pydantic-settings, so the probe that
Docker runs every few seconds starts quickly.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "M2S_"


class ServiceAddress(BaseSettings):
    """Host and port of the HTTP server; each field ``x`` is read from ``M2S_X``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="interface to listen on; 0.0.0.0 = all")
    port: int = Field(8000, description="TCP port, 0 = any free one")

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        host = host.strip()
        if not host:
            raise ValueError("M2S_HOST is empty; use e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (all).")
        return host

    @field_validator("port")
    @classmethod
    def _port(cls, port: int) -> int:
        if not 0 <= port <= 65535:
            raise ValueError(f"M2S_PORT must be 1-65535 (or 0 to let the OS pick a free port), got {port}.")
        return port


def env_name(field: str) -> str:
    """The environment variable of setting ``field``: ``M2S_`` and the name in capitals."""
    return f"{ENV_PREFIX}{field.upper()}"


__all__ = ["ENV_PREFIX", "ServiceAddress", "env_name"]
