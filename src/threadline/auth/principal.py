"""Who is calling: the workspace and the scopes of the API key that authenticated the request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from threadline.models.enums import Scope

# admin may do everything write may, write everything read may.
_IMPLIED = {
    Scope.ADMIN: {Scope.ADMIN, Scope.WRITE, Scope.READ},
    Scope.WRITE: {Scope.WRITE, Scope.READ},
    Scope.READ: {Scope.READ},
}


@dataclass(frozen=True, slots=True)
class Principal:
    workspace_id: int
    workspace_public_id: uuid.UUID
    api_key_id: int
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return any(scope in _IMPLIED[s] for s in self.scopes)
