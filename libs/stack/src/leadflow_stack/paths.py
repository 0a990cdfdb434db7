from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from leadflow_stack.errors import StackError

_KAFKA_POM = Path("deploy") / "kafka" / "pom.xml"


@cache
def repo_root() -> Path:
    """The LeadFlow checkout: ``LEADFLOW_REPO_ROOT``, else the first ancestor (of the working
    directory, then of this file) that holds ``deploy/kafka/pom.xml``."""
    override = os.environ.get("LEADFLOW_REPO_ROOT")
    if override:
        return Path(override).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / _KAFKA_POM).is_file():
                return candidate
    raise StackError(
        f"cannot find the LeadFlow repository ({_KAFKA_POM} not found above {Path.cwd()}); "
        "run from the checkout or set LEADFLOW_REPO_ROOT"
    )


def kafka_deploy_dir() -> Path:
    return repo_root() / "deploy" / "kafka"
