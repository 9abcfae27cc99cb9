import pytest
from packaging.version import Version

from convbn_compat.core.releases import (
    FLAVOURS,
    NEWEST,
    NIGHTLY,
    OLDEST,
    RELEASES,
    ConfigError,
    get_release,
    torch_index,
)
from convbn_compat.core.versions import release_of


def test_table_covers_every_release_with_the_pass():
    keys = [k for k in RELEASES if k != NIGHTLY]
    assert keys[0] == OLDEST == "2.2"  # the pass shipped in 2.2 (pytorch#108757)
    minors = [int(k.split(".")[1]) for k in keys]
    assert minors == list(range(2, minors[-1] + 1)), "no release may be skipped"
    assert keys[-1] == NEWEST
    assert list(RELEASES)[-1] == NIGHTLY


@pytest.mark.parametrize("release", [r for r in RELEASES.values() if not r.is_nightly])
def test_rows_are_consistent(release):
    assert release_of(release.torch) == release.key
    assert Version(release.torch).release[2:] != ()  # an exact patch pin
    assert release.cuda.startswith("cu")
    assert release.constraints.is_file(), f"add {release.constraints}"


def test_nightly_has_constraints_and_no_pin():
    nightly = RELEASES[NIGHTLY]
    assert nightly.requirement() == "torch"
    assert nightly.constraints.is_file()


def test_every_constraints_file_belongs_to_a_row():
    files = {p.name for p in RELEASES[OLDEST].constraints.parent.glob("torch-*.txt")}
    assert files == {r.constraints.name for r in RELEASES.values()}


@pytest.mark.parametrize(
    ("key", "flavour", "env", "expected"),
    [
        ("2.4", "cpu", {}, "https://download.pytorch.org/whl/cpu"),
        ("2.4", "cuda", {}, "https://download.pytorch.org/whl/cu121"),
        ("2.15", "cuda", {}, "https://download.pytorch.org/whl/cu132"),
        ("nightly", "cpu", {}, "https://download.pytorch.org/whl/nightly/cpu"),
        ("2.4", "cuda", {"CONVBN_TORCH_INDEX": "default"}, None),
        (
            "2.4",
            "cpu",
            {"CONVBN_TORCH_INDEX": "https://mirror.example/whl/"},
            "https://mirror.example/whl",
        ),
        ("2.4", "cpu", {"CONVBN_TORCH_INDEX": "file:///srv/wheels"}, "file:///srv/wheels"),
    ],
)
def test_torch_index(key, flavour, env, expected):
    assert torch_index(RELEASES[key], flavour, env) == expected


@pytest.mark.parametrize("bad", ["pypi", "download.pytorch.org/whl/cpu", "defualt"])
def test_malformed_index_is_refused_with_the_choices(bad):
    with pytest.raises(ConfigError, match="neither 'default' nor a URL"):
        torch_index(RELEASES["2.4"], "cpu", {"CONVBN_TORCH_INDEX": bad})


def test_unknown_release_and_flavour_list_the_choices():
    with pytest.raises(ConfigError, match=r"unknown release '1.13'; choose one of: 2.2, .*nightly"):
        get_release("1.13")
    with pytest.raises(ConfigError, match="choose one of: cpu, cuda"):
        torch_index(RELEASES["2.4"], "rocm", {})
    assert FLAVOURS == ("cpu", "cuda")
