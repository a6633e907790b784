"""Lightning callbacks whose state key is formatted once."""

from __future__ import annotations

from functools import cached_property


class StateKeyOnce:
    """Mixin for a Lightning callback whose state key (its class and settings, fixed once built) is formatted once.

    Lightning formats the key anew for every hook it calls on the callback, several times a training step.
    """

    @cached_property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint: Lightning's."""
        return super().state_key  # type: ignore[misc]
