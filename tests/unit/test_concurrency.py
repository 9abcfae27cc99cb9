"""Writers and readers sharing one results folder never see a torn file."""

import json
import multiprocessing
import time

from convbn_compat.core.outcomes import Outcome
from convbn_compat.core.record import CaseRecord
from convbn_compat.core.results import SCHEMA, SCHEMA_VERSION, atomic_write_json, load_run


def _writer(path, rounds):
    data = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "complete": False,
        "environment": {"torch": "2.4.1"},
        "cases": [],
    }
    for i in range(rounds):
        # Grow the file case by case, as a session does, with a large payload so a
        # non-atomic write would be caught half-way.
        data["cases"].append(
            {
                **CaseRecord(
                    f"case-{i}",
                    "upstream",
                    "cpu",
                    outcome=Outcome.FUSED,
                    expected_outcome=Outcome.FUSED,
                ).to_json(),
                "message": "x" * 20000,
            }
        )
        data["complete"] = i == rounds - 1
        atomic_write_json(path, data)


def test_reader_never_sees_a_torn_results_file(tmp_path):
    path = tmp_path / "tests-2.4-cpu.json"
    atomic_write_json(
        path,
        {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "complete": False,
            "environment": {"torch": "2.4.1"},
            "cases": [],
        },
    )
    writers = [multiprocessing.Process(target=_writer, args=(path, 150)) for _ in range(2)]
    for w in writers:
        w.start()
    reads = 0
    deadline = time.monotonic() + 60
    while any(w.is_alive() for w in writers) and time.monotonic() < deadline:
        run = load_run(path)  # raises on a half-written file
        assert isinstance(run.records, list)
        reads += 1
    for w in writers:
        w.join()
    assert all(w.exitcode == 0 for w in writers)
    assert reads > 10
    final = json.loads(path.read_text())
    assert final["complete"] is True
    assert len(final["cases"]) == 150
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left"
