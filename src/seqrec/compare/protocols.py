"""Runs grouped by protocol and test set: one comparison never mixes them unless asked to, and then says so.

Every run records a protocol fingerprint and a test-set fingerprint (`seqrec.fingerprints`). Runs with the
same pair form one group. `group_runs` refuses several groups with one line naming each differing setting
and where its values come from, unless `allow_mixed`: then every run's row label gets the settings that
tell its group apart (`bce @ evaluation=SampledCandidates,evaluation.num_negatives=50`), so the table
never pools them, and significance stays inside the baseline's group.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from seqrec.compare.runs import RunRecord
from seqrec.fingerprints import DATA_KEY, UNSET, digest, protocol_settings

LABEL_SEPARATOR = " @ "  # "<variant> @ <what differs>" under allow_mixed
TEST_SET_KEY = "test set"
_SHOWN_SETTINGS = 4  # differing settings named in a refusal, the rest counted


class MixedProtocols(ValueError):
    """The runs of one comparison differ in their protocol or test set."""


@dataclass(frozen=True)
class ProtocolGroup:
    """Runs that share a protocol and a test set."""

    protocol: str  # sha256 hex of `settings`
    settings: dict[str, Any]
    test_set: str | None  # None: no run of the group recorded it or has ranks to derive it from
    test_samples: int | None
    runs: tuple[RunRecord, ...]
    recorded: bool  # False: the protocol was derived from old records' configs
    label: str = ""  # what tells this group apart from the others ("" when it is the only one)

    def describe(self) -> str:
        """'protocol 1a2b3c4d5e6f, test set 9f8e7d6c5b4a (2,528 samples)', with what was not recorded."""
        text = f"protocol {self.protocol[:12]}" + ("" if self.recorded else " (derived from the config)")
        if self.test_set is None:
            return text + ", no test-set fingerprint recorded"
        samples = f" ({self.test_samples:,} samples)" if self.test_samples is not None else ""
        return text + f", test set {self.test_set[:12]}{samples}"


def fingerprints_of(run: RunRecord) -> dict[str, Any]:
    """The run's recorded fingerprints, completed for older records: the protocol from the recorded config
    (data named by its path), the test set from the ranks (filled at scan time) or None."""
    recorded = run.fingerprints
    if "protocol" in recorded and "protocol_settings" in recorded:
        return {**recorded, "recorded": True}
    settings = protocol_settings(run.config, None, run.choices)
    return {
        "protocol": digest(settings),
        "protocol_settings": settings,
        "test_set": recorded.get("test_set"),
        "test_samples": recorded.get("test_samples", run.test_samples),
        "recorded": False,
    }


def protocol_groups(runs: Sequence[RunRecord]) -> list[ProtocolGroup]:
    """Groups in the order of their first run. Runs of one protocol without a test-set fingerprint join
    that protocol's group when it has a single known test set (they are assumed to share it), else they
    form a group of their own."""
    by_protocol: dict[str, list[tuple[RunRecord, dict]]] = {}
    for run in runs:
        prints = fingerprints_of(run)
        by_protocol.setdefault(prints["protocol"], []).append((run, prints))
    groups = []
    for members in by_protocol.values():
        known = list(dict.fromkeys(p["test_set"] for _, p in members if p["test_set"] is not None))
        if len(known) <= 1:
            groups.append(_group(members, known[0] if known else None))
            continue
        groups += [
            _group([m for m in members if m[1]["test_set"] == test_set], test_set) for test_set in known
        ]
        unknown = [member for member in members if member[1]["test_set"] is None]
        if unknown:
            groups.append(_group(unknown, None))
    return groups


def _group(members: list[tuple[RunRecord, dict]], test_set: str | None) -> ProtocolGroup:
    first = members[0][1]
    samples = next((p["test_samples"] for _, p in members if p["test_set"] == test_set), None)
    return ProtocolGroup(
        protocol=first["protocol"],
        settings=first["protocol_settings"],
        test_set=test_set,
        test_samples=samples,
        runs=tuple(run for run, _ in members),
        recorded=all(p["recorded"] for _, p in members),
    )


def differing_settings(groups: Sequence[ProtocolGroup]) -> list[str]:
    """Protocol settings whose values differ between groups, or "test set" if only test sets differ. A key
    that only some groups have, in a section whose `_target_` differs (evaluation.num_negatives of a
    sampled evaluation next to a full one), counts only where the groups that have it disagree: the class
    implies it."""
    keys = sorted({key for group in groups for key in group.settings})
    differing = []
    for key in keys:
        values = [_value(group, key) for group in groups]
        if len(set(values)) == 1:
            continue
        if _implied(key, groups) and len({value for value in values if value != UNSET}) <= 1:
            continue
        differing.append(key)
    if any(key.startswith("dataset.") for key in differing):  # the data's fingerprint follows from them
        differing = [key for key in differing if key != DATA_KEY]
    if not differing and len({group.test_set for group in groups}) > 1:  # else the test set follows too
        differing.append(TEST_SET_KEY)
    return differing


def _implied(key: str, groups: Sequence[ProtocolGroup]) -> bool:
    """Whether `key` belongs to a section whose class (`_target_`) differs between the groups."""
    target = f"{key.partition('.')[0]}._target_"
    return key != target and len({_value(group, target) for group in groups}) > 1


def _name(key: str) -> str:
    return key.removesuffix("._target_")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _value(group: ProtocolGroup, key: str) -> str:
    """The setting as text; a `_target_` by its class name."""
    if key == TEST_SET_KEY:
        return group.test_set[:12] if group.test_set else "not recorded"
    text = _text(group.settings.get(key, UNSET))
    return text.rpartition(".")[2] if key.endswith("._target_") else text


def _short(key: str, value: str) -> str:
    """A label part: `_target_` values by class name, the data by a short hash of its fingerprint."""
    if key == DATA_KEY:
        return f"data=#{hashlib.sha256(value.encode()).hexdigest()[:6]}"
    if key == TEST_SET_KEY:
        return f"test_set=#{value[:6]}" if value != "not recorded" else "test_set=unrecorded"
    return f"{_name(key)}={value}"


def where(group: ProtocolGroup, groups: Sequence[ProtocolGroup]) -> str:
    """Where the group's runs are: their common folder when it holds no other group's run, else names."""
    locations = [run.location for run in group.runs]
    others = [run.location for other in groups if other is not group for run in other.runs]
    n = len(locations)
    try:
        common = os.path.commonpath(locations)
    except ValueError:  # absolute and relative locations mixed
        common = ""
    inside = [place for place in others if place == common or place.startswith(common.rstrip("/") + "/")]
    if common and common not in ("/", ".") and not inside:
        return f"{n} run{'s' if n != 1 else ''} in {common}"
    shown = ", ".join(locations[:2])
    return shown + (f" and {n - 2} more" if n > 2 else "")


def refusal(groups: Sequence[ProtocolGroup]) -> str:
    """One line: what differs, which runs have which value, and what to do."""
    parts = []
    differing = differing_settings(groups)
    for key in differing[:_SHOWN_SETTINGS]:
        values: dict[str, list[str]] = {}
        for group in groups:
            values.setdefault(_value(group, key), []).append(where(group, groups))
        parts.append(
            f"{_name(key)} is "
            + " but ".join(f"{value} in {'; '.join(where)}" for value, where in values.items())
        )
    if len(differing) > _SHOWN_SETTINGS:
        parts.append(f"and {len(differing) - _SHOWN_SETTINGS} more settings")
    what = "protocols" if any(key != TEST_SET_KEY for key in differing) else "test sets"
    return (
        f"refusing to compare runs of different {what}: {'; '.join(parts)}. Compare one protocol at a time "
        "(pass only its folders), or add --allow-mixed to see them side by side, each row labelled with "
        "what differs and no verdict across them."
    )


def group_runs(
    runs: Sequence[RunRecord], allow_mixed: bool = False
) -> tuple[list[RunRecord], list[ProtocolGroup]]:
    """(runs, groups): the runs unchanged when they form one group; MixedProtocols (one line) when they do
    not and `allow_mixed` is false; else the runs relabelled `<variant> @ <what differs>` per group."""
    groups = protocol_groups(runs)
    if len(groups) <= 1:
        return list(runs), groups
    if not allow_mixed:
        raise MixedProtocols(refusal(groups))
    differing = differing_settings(groups)
    labelled_groups, relabelled = [], {}
    for index, group in enumerate(groups, start=1):
        parts = [
            _short(key, _value(group, key))
            for key in differing
            if not (_implied(key, groups) and _value(group, key) == UNSET)
        ]
        label = ",".join(parts) or f"group {index}"
        members = tuple(
            replace(run, objective=f"{run.objective}{LABEL_SEPARATOR}{label}") for run in group.runs
        )
        relabelled.update({id(run): member for run, member in zip(group.runs, members, strict=True)})
        labelled_groups.append(replace(group, label=label, runs=members))
    return [relabelled[id(run)] for run in runs], labelled_groups


def check_one_group(runs: Sequence[RunRecord], what: str) -> None:
    """MixedProtocols unless the runs share one protocol and test set (`what`: "one row", "one test")."""
    groups = protocol_groups(runs)
    if len(groups) > 1:
        raise MixedProtocols(refusal(groups).replace("refusing to compare", f"refusing to put in {what}", 1))


def variant_of(label: str) -> str:
    """'bce @ evaluation=SampledCandidates' -> 'bce'."""
    return label.partition(LABEL_SEPARATOR)[0]
