"""Model configs recorded before the reference ports became variants, mapped to the variant they built.

Such a config (run.json's config.model, a saved model's model.json, .hydra/config.yaml) names
`seqrec.model.SasRecBackbone` with the flat flags that reproduced the ports. Each variant fixes those flags;
a recorded config maps to the variant whose fixed settings it has, keeping the keys the variant still takes
(the same weights then load: parameter names did not change). Anything else is a one-line error.
"""

from __future__ import annotations

from seqrec.errors import ConfigError

OLD_TARGET = "seqrec.model.SasRecBackbone"
OLD_DEFAULTS = {  # the flat flags and their defaults, as the old signature had them
    "norm_first": False,
    "position_order": "backward",
    "norm_keys_values": True,
    "residual_from_norm": False,
    "ffn_norm": True,
    "norm_per_position": False,
    "layer_norm_eps": 1e-5,
    "activation": "gelu",
    "attention_out_projection": True,
    "attention_output_dropout": True,
    "embedding_dropout": 0.0,
    "scale_item_embeddings": False,
    "attend_padding": False,
    "init": "trunc_normal",
    "layout": "auto",
    "ffn_output_dropout": True,
    "padding_embedding": False,
    "query_projection": False,
    "item_projection": False,
    "similarity": "dot",
}
KEPT_BY_SASREC = ("norm_first", "position_order", "activation", "layout")
FLAT_FLAGS = set(OLD_DEFAULTS) - {*KEPT_BY_SASREC, "query_projection", "item_projection", "similarity"}
"""The keys that only the old signature had: a config with one of them is an old one."""
SIZES = ("num_items", "embedding_dim", "num_heads", "num_layers", "ffn_dim", "dropout", "max_seq_len")
HEADS = ("query_projection", "item_projection", "similarity")
NO_HEADS = {"query_projection": False, "item_projection": False, "similarity": "dot"}
PRE_NORM_PORT = {"norm_first": True, "position_order": "backward", "activation": "relu"}
# model option -> (target, the old flags it fixes, the old keys it still takes). embedding_dropout=None: the
# port drops the embeddings at model.dropout.
VARIANTS = {
    "sasrec": (
        OLD_TARGET,
        {key: OLD_DEFAULTS[key] for key in FLAT_FLAGS},
        (*SIZES, *KEPT_BY_SASREC, *HEADS),
    ),
    "sasrec_pytorch_port": (
        "seqrec.models.sasrec_pytorch_port.SasRecPyTorchPort",
        OLD_DEFAULTS
        | PRE_NORM_PORT
        | NO_HEADS
        | {
            "norm_keys_values": False,
            "residual_from_norm": True,
            "layer_norm_eps": 1e-8,
            "attention_output_dropout": False,
            "embedding_dropout": None,
            "scale_item_embeddings": True,
            "attend_padding": True,
            "init": "xavier_normal",
        },
        SIZES,
    ),
    "sasrec_tf2_port": (
        "seqrec.models.sasrec_tf2_port.SasRecTf2Port",
        OLD_DEFAULTS
        | PRE_NORM_PORT
        | NO_HEADS
        | {
            "norm_keys_values": False,
            "residual_from_norm": True,
            "ffn_norm": False,
            "norm_per_position": True,
            "layer_norm_eps": 1e-8,
            "attention_out_projection": False,
            "attention_output_dropout": False,
            "embedding_dropout": None,
            "scale_item_embeddings": True,
            "init": "glorot_uniform",
        },
        (*SIZES, "layout"),
    ),
    "sasrec_keras_port": (
        "seqrec.models.sasrec_keras_port.SasRecKerasPort",
        OLD_DEFAULTS
        | PRE_NORM_PORT
        | {
            "layer_norm_eps": 1e-3,
            "attention_output_dropout": False,
            "ffn_output_dropout": False,
            "embedding_dropout": None,
            "attend_padding": True,
            "padding_embedding": True,
            "init": "keras_attention",
        },
        (*SIZES, *HEADS),
    ),
}
_FREE = set(SIZES) | set(HEADS) | {"layout"}  # checked by the variant itself, not fixed


def is_old_model_config(config) -> bool:
    return str(config.get("_target_")) == OLD_TARGET and any(key in config for key in FLAT_FLAGS)


def matching_variant(config) -> tuple[str, list[str]]:
    """The model option whose fixed settings an old config has (keys that differ: []), or the closest one
    with the keys that differ."""
    settings = OLD_DEFAULTS | {key: value for key, value in dict(config).items() if key != "_target_"}
    if settings.get("layout") == "padded" and settings.get("attend_padding"):
        settings["layout"] = "auto"  # a left-padded window is padded either way
    differences = {}
    for name, (_, fixed, kept) in VARIANTS.items():
        wanted = {key: settings.get("dropout") if value is None else value for key, value in fixed.items()}
        differ = [key for key, value in wanted.items() if key not in kept and settings[key] != value]
        differ += [key for key in settings if key not in kept and key not in wanted and key not in _FREE]
        differences[name] = sorted(differ)
        if not differ:
            return name, []
    name = min(differences, key=lambda n: len(differences[n]))
    return name, differences[name]


def upgrade_model_config(config: dict) -> dict:
    """A model config as a variant takes it (a current config unchanged); ConfigError if none matches."""
    if not is_old_model_config(config):
        return dict(config)
    name, differ = matching_variant(config)
    if differ:
        raise _no_variant(config, name, differ)
    target, _, kept = VARIANTS[name]
    upgraded = {"_target_": target}
    return upgraded | {key: config[key] for key in kept if key in config}


def _no_variant(config: dict, closest: str, differ: list[str]) -> ConfigError:
    keys = ", ".join(f"{key}={config.get(key, OLD_DEFAULTS.get(key))!r}" for key in differ)
    return ConfigError(
        f"this model config predates seqrec's model variants and matches none of them (closest: "
        f"model={closest}, which differs in {keys}); train it again with model=sasrec or a port "
        "(sasrec_pytorch_port, sasrec_tf2_port, sasrec_keras_port)"
    )


def flat_settings(config) -> dict:
    """A current model config in the old flat flags: what its variant fixes, plus its own keys (the
    inverse of upgrade_model_config; tests/test_reference_presets.py checks presets in these terms)."""
    config = dict(config)
    for target, fixed, kept in VARIANTS.values():
        if target == config["_target_"]:
            flat = {key: config["dropout"] if value is None else value for key, value in fixed.items()}
            return flat | {key: config[key] for key in kept if key in config}
    raise ValueError(f"{config['_target_']} is not a variant that had flat flags")


def old_config_message(config) -> str:
    """One line for a composed config whose model section has the old flat flags (a preset frozen before
    the variants): which variant they are, and what to write instead."""
    config = dict(config)
    old = sorted(key for key in config if key in FLAT_FLAGS)
    old = f"model.{old[0]}" + (f" (and {len(old) - 1} more)" if len(old) > 1 else "")
    name, differ = matching_variant(config)
    if differ:
        return f"{old}: {_no_variant(config, name, differ)}"
    return (
        f"{old}: flags of seqrec's backbone before the reference ports became model variants; these settings "
        f"are model={name}: choose it (in a preset: override /model: {name}) and keep only its keys "
        f"({', '.join(VARIANTS[name][2])})"
    )
