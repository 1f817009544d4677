"""One-line errors for command-line overrides that Hydra itself rejects while composing the config.

A typo such as `trainer.epoch=3` (no `+`) fails inside Hydra's composition, before seqrec's checks run,
with a five-line message; `+trainer.epoch=3` reaches seqrec.config.check_config and gets one line. With
`one_line_override_errors()` installed (run.py does), both get the same line, and a value of the wrong
type (`trainer.epochs=abc`) one line naming the override. It wraps one function of Hydra's config
loader (hydra-core 1.3); if that function is not there, Hydra's own messages stay.
"""

from __future__ import annotations

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from seqrec.config import unknown_key_message
from seqrec.errors import ConfigError, one_line

_HYDRA_APPLY = getattr(ConfigLoaderImpl, "_apply_overrides_to_config", None)


def one_line_override_errors() -> None:
    """Make Hydra's rejection of a key=value override a ConfigError of one line (idempotent)."""
    if _HYDRA_APPLY is not None:
        ConfigLoaderImpl._apply_overrides_to_config = staticmethod(_apply_overrides)


def _apply_overrides(overrides: list[Override], cfg: DictConfig) -> None:
    for override in overrides:  # Hydra applies them one by one too; this way the failing one is known
        try:
            _HYDRA_APPLY([override], cfg)
        except ConfigCompositionException as error:
            raise ConfigError(override_message(override, error, cfg)) from error


def override_message(override: Override, error: ConfigCompositionException, cfg: DictConfig) -> str:
    cause = error.__cause__
    plain = not (override.is_add() or override.is_delete() or override.is_force_add())
    if plain and isinstance(cause, ConfigAttributeError | ConfigKeyError):
        return unknown_override_key(str(override.key_or_group), cfg)
    if isinstance(cause, OmegaConfBaseException):
        return f"{override.input_line}: {str(cause.msg).splitlines()[0]}"
    return one_line(str(error))


def unknown_override_key(key: str, cfg: DictConfig) -> str:
    """The message of seqrec.config for the first part of a dotted `key` that the config lacks."""
    parts = key.split(".")
    for depth in range(len(parts)):
        parent = ".".join(parts[:depth])
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or parts[depth] not in node:
            valid = {str(name) for name in node.keys()} if isinstance(node, DictConfig) else set()
            return unknown_key_message(parts[depth], valid - {"hydra"}, f"{parent}." if parent else "")
    return f"could not override {key}; fix or remove it"
