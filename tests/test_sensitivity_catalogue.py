"""The sensitivity catalogue against the installed torch's pass: where each mutation
applies, and that every mutant is still valid Python (a syntax error would be "caught"
by any suite, and measure nothing)."""

from __future__ import annotations

import ast

import pytest

pytest.importorskip("torch")

from convbn_compat.tools.sensitivity import (
    COUNT_ONLY,
    FOLD,
    GUARD,
    LAYOUT,
    MUTATIONS,
    NEVER,
    apply,
    pass_source,
)


def test_catalogue_covers_every_fault_class():
    assert {m.fault_class for m in MUTATIONS} == {FOLD, LAYOUT, GUARD, NEVER, COUNT_ONLY}
    assert len({m.id for m in MUTATIONS}) == len(MUTATIONS)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.id)
def test_mutation_applies_to_this_release_and_parses(mutation):
    source = pass_source().read_text()
    mutated = apply(mutation, source)
    # Every fault class exists in every release with the pass (2.2 and later).
    assert mutated is not None, f"{mutation.id} matches nothing in {pass_source()}"
    assert mutated != source
    ast.parse(mutated)


def test_apply_leaves_unrelated_source_alone():
    assert all(apply(m, "x = 1\n") is None for m in MUTATIONS)
