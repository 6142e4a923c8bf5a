"""Domain errors: raised by pure rules, mapped to problem details in one place (the HTTP edge)."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses."""


class IllegalTransition(DomainError):
    """The entity is not in a state that allows the action (409)."""

    def __init__(self, entity: str, current: str, action: str) -> None:
        super().__init__(f"cannot {action.replace('_', ' ')}: the {entity} is {current}")
        self.entity = entity
        self.current = current
        self.action = action


class RuleViolation(DomainError):
    """The action is allowed in this state but its amounts or quantities are not (409)."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field
