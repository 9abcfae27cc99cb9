"""The sensitivity catalogue against the installed torch's pass: each mutation applies
exactly where the release has the path it targets, and every mutant is still valid
Python (a syntax error would be "caught" by any suite, and measure nothing)."""

from __future__ import annotations

import ast

import pytest

pytest.importorskip("torch")

from convbn_compat.shim import paths
from convbn_compat.tools.sensitivity import (
    COUNT_ONLY,
    FOLD,
    GUARD,
    LAYOUT,
    MUTATIONS,
    NEVER,
    TRANSFORMS,
    apply,
    pass_source,
)


def test_catalogue_covers_every_fault_class_on_every_path():
    assert {m.fault_class for m in MUTATIONS} == {FOLD, LAYOUT, GUARD, NEVER, COUNT_ONLY}
    assert len({m.id for m in MUTATIONS}) == len(MUTATIONS)
    for path in TRANSFORMS:
        hitting = {m.fault_class for m in MUTATIONS if path in m.paths}
        assert hitting == {FOLD, LAYOUT, GUARD, NEVER, COUNT_ONLY}, path


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.id)
def test_mutation_applies_where_the_release_has_its_path_and_parses(mutation):
    source = pass_source().read_text()
    mutated = apply(mutation, source)
    have = {p.value for p in paths.available()}
    if not set(mutation.paths) & have:
        assert mutated is None, f"{mutation.id} applies, but this release lacks {mutation.paths}"
        return
    assert mutated is not None, f"{mutation.id} matches nothing in {pass_source()}"
    assert mutated != source
    ast.parse(mutated)


def test_apply_leaves_unrelated_source_alone():
    assert all(apply(m, "x = 1\n") is None for m in MUTATIONS)
