"""JSON Schemas of the event contract, generated from the models into docs/events/.

Run ``python -m leadflow_contracts.schemas [DIR]`` after changing a model; a test fails while the
committed schemas differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from leadflow_contracts.envelope import Event
from leadflow_contracts.events import EVENT_MODELS, TOPIC_OF


def render_schemas() -> dict[str, str]:
    """File name -> schema text, one file per event type plus the envelope."""
    files: dict[str, str] = {}
    for event_type, model in EVENT_MODELS.items():
        schema: dict[str, Any] = model.model_json_schema()
        schema["$id"] = f"https://leadflow.dev/events/{event_type}.json"
        schema["title"] = event_type
        schema["x-kafka-topic"] = TOPIC_OF[event_type]
        files[f"{event_type}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    envelope = Event[Any].model_json_schema()
    envelope["title"] = "envelope"
    files["envelope.json"] = json.dumps(envelope, indent=2, sort_keys=True) + "\n"
    return files


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/events")
    for path in write_schemas(target):
        sys.stdout.write(f"{path}\n")
