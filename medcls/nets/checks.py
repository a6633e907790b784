"""Checks of the nets' settings: a ConfigError naming the option as the command line spells it."""

from __future__ import annotations

from medcls.errors import ConfigError


def check_probability(value: float, option: str) -> None:
    """Refuse a dropout probability outside [0, 1] (torch's own error does not name the option).

    Raises:
        ConfigError: ``value`` is below 0 or above 1.
    """
    if not 0 <= value <= 1:
        raise ConfigError(f"{option} must be a probability between 0 and 1 (e.g. 0.2); got {value}.")


def check_positive(value: int, option: str) -> None:
    """Refuse a count (channels, units) below 1, which torch would build into an empty layer without complaint.

    Raises:
        ConfigError: ``value`` is below 1.
    """
    if value < 1:
        raise ConfigError(f"{option} must be at least 1; got {value}.")
