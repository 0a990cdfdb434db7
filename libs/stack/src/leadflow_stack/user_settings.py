"""Settings the user gives the services ``make up`` starts.

Lowest to highest: the stack's own values (its ports, databases, broker, development mode, loopback
webhook receivers), then ``leadflow.env`` at the repository root (dotenv format), then the
environment of ``make up``. Only names with a service's prefix (``CAPTURE_``, ``ROUTING_``, ...) are
taken. A service's ``PORT`` moves it (status, demo and readiness follow); ``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS`` and ``HOST`` point it elsewhere while the stack still runs its own
Kafka and PostgreSQL. ``TOPIC_PREFIX`` and ``ADMIN_API_KEY`` stay the stack's: it creates the
topics under its prefix, and the demo and ``make status`` use its key.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import get_args

from dotenv import dotenv_values
from pydantic import SecretStr

from leadflow_stack.errors import StackError

log = logging.getLogger(__name__)

ENV_FILE_NAME = "leadflow.env"
STACK_OWNED = ("TOPIC_PREFIX", "ADMIN_API_KEY")


def env_prefix(service: str) -> str:
    return f"{service.upper()}_"


def read_env_file(path: Path | None) -> dict[str, str]:
    """The file's assignments (a missing file has none); a bare name without ``=`` is skipped."""
    if path is None or not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def merge_user_settings(
    service: str, *, file_values: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """The service's settings from the file, overridden by the environment; stack-owned ones dropped."""
    prefix = env_prefix(service)
    merged = {key: value for key, value in file_values.items() if key.startswith(prefix)}
    merged.update({key: value for key, value in environ.items() if key.startswith(prefix)})
    for name in STACK_OWNED:
        if merged.pop(prefix + name, None) is not None:
            log.warning("%s%s is set by the stack itself; the value given is ignored", prefix, name)
    return merged


@cache
def setting_names(service: str) -> frozenset[str]:
    """Every environment variable ``leadflow_<service>.settings.Settings`` reads (``CAPTURE_PORT``, ...)."""
    module = importlib.import_module(f"leadflow_{service}.settings")
    settings_class = module.Settings
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    return frozenset(f"{prefix}{field}".upper() for field in settings_class.model_fields)


@cache
def secret_setting_names(service: str) -> frozenset[str]:
    """The environment variables of ``service`` that hold secrets: its ``SecretStr`` settings and its
    ``DATABASE_URL`` (the connection's password is in it). Deployments give each service these alone,
    by name, from the secret store (deploy/helm, deploy/k8s)."""
    settings_class = importlib.import_module(f"leadflow_{service}.settings").Settings
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    secret = {name for name, field in settings_class.model_fields.items()
              if SecretStr in (get_args(field.annotation) or (field.annotation,))}
    return frozenset(f"{prefix}{field}".upper() for field in secret | {"database_url"})


def unknown_names(values: Iterable[str], services: Iterable[str]) -> list[str]:
    """Names with a service's prefix that its Settings does not read (a typo is otherwise ignored)."""
    known = {env_prefix(service): setting_names(service) for service in services}
    return sorted(
        name
        for name in values
        for prefix, names in known.items()
        if name.startswith(prefix) and name.upper() not in names
    )


def port_of(service: str, settings: Mapping[str, str], default: int) -> int:
    raw = settings.get(f"{env_prefix(service)}PORT")
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{env_prefix(service)}PORT={raw!r} is not a port number") from None
