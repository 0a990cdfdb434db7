"""The forms one replica has served, kept in process (a cache: the database stays the truth)."""

from __future__ import annotations

from dataclasses import dataclass, field

from leadflow_capture.domain import FormDefinition

UNKNOWN_FORM_LABEL = "unknown"


@dataclass
class KnownForms:
    # key -> allowed origins of forms seen to exist; lets a rate-limited answer carry CORS headers
    # without a database read, and keeps metric labels to real form keys.
    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # key -> definition of active forms as last read; a submission checks it against the stored form
    # in its own transaction, so it saves a read, never serves a stale definition.
    definitions: dict[str, FormDefinition] = field(default_factory=dict)

    def remember(self, form: FormDefinition) -> None:
        self.origins[form.key] = form.allowed_origins
        if form.archived:
            self.definitions.pop(form.key, None)
        else:
            self.definitions[form.key] = form

    def remembered(self, form_key: str) -> FormDefinition | None:
        return self.definitions.get(form_key)

    def forget(self, form_key: str) -> None:
        self.definitions.pop(form_key, None)

    def allowed_origins(self, form_key: str) -> tuple[str, ...]:
        return self.origins.get(form_key, ())

    def label(self, form_key: str) -> str:
        """The form's metric label: its key once it is known to exist."""
        return form_key if form_key in self.origins else UNKNOWN_FORM_LABEL
