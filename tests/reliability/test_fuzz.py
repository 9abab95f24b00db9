"""Property-based fuzz of the two parsers users type into: config overrides (`kflow train CFG
key=value ...`) and the studio's JSON requests. Every input is either taken or refused with the
package's own error in one line, never another exception (which the CLI would show as a bug and
the studio as a 500)."""

import dataclasses
import json
import os
import typing
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kflow.config import Config, load_config  # noqa: E402
from kflow.studio.requests import REQUESTS, RequestError  # noqa: E402
from kflow.utils.errors import ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p) for p in (ROOT / "configs").glob("*.yaml"))
FUZZ = settings(
    max_examples=int(os.environ.get("KFLOW_FUZZ_EXAMPLES", 400)),
    derandomize="KFLOW_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def config_keys(cls=Config, prefix="") -> list[str]:
    """Every dotted key of the config tree (sections and leaves)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        keys.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            keys += config_keys(hints[f.name], key + ".")
    return keys


def taken_or_refused(call, error):
    """call()'s result, or None when it raised `error` with a one-line message; anything else fails."""
    try:
        return call()
    except error as e:
        assert str(e) and "\n" not in str(e).strip(), str(e)
        return None


KEYS = config_keys()
# value texts: YAML scalars, lists and maps users write, broken YAML, and raw text
SCALARS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "no", "null", "~", ".nan", "-.inf", "1e400", "0x1f", "'3'", "[", "]", "{", "}", ":"]),
    st.sampled_from(["stage", "full", "fused", "length", "equal", "db6", "haar", "rms", "none", "window"]),
    st.text(max_size=12),
)
VALUES = st.recursive(SCALARS, lambda v: st.lists(v, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"), max_leaves=8)
OVERRIDE = st.one_of(
    st.tuples(st.sampled_from(KEYS), VALUES).map("=".join),
    st.tuples(st.sampled_from(KEYS) | st.text(max_size=10), st.text(max_size=10)).map("=".join),
    st.text(max_size=20),  # no '=' at all, stray dots, control characters ...
)


@FUZZ
@given(path=st.sampled_from(CONFIGS), overrides=st.lists(OVERRIDE, max_size=4))
def test_config_overrides_are_taken_or_refused_in_one_line(path, overrides):
    cfg = taken_or_refused(lambda: load_config(path, overrides), ConfigError)
    if cfg is not None:  # what is taken saves and reloads exactly (the run folder's config.json)
        assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=10),
    lambda v: st.lists(v, max_size=4) | st.dictionaries(st.text(max_size=6), v, max_size=4),
    max_leaves=12,
)
FIELDS = sorted({f.name for r in REQUESTS.values() for f in dataclasses.fields(r)} | {"upload", "test_index"})
# a request body: known fields (and the image objects' own) with any JSON value, plus stray keys
BODY = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=6),
    JSON | st.dictionaries(st.sampled_from(["upload", "test_index"]), JSON, max_size=2),
    max_size=6,
)


@FUZZ
@given(kind=st.sampled_from(sorted(REQUESTS)), body=BODY, num_bands=st.integers(1, 4))
def test_studio_requests_are_taken_or_refused_in_one_line(kind, body, num_bands):
    req = taken_or_refused(lambda: REQUESTS[kind].parse(body, num_bands), RequestError)
    assert req is None or req.kind == kind


def test_molecule_config_overrides_are_taken_or_refused_in_one_line():
    from kflow.cli.molecules import load_assembly_config
    from kflow.molecules.config import AssemblyConfig

    configs = sorted(str(p) for p in (ROOT / "configs" / "molecules").glob("*.yaml"))
    keys = config_keys(AssemblyConfig)
    override = st.one_of(st.tuples(st.sampled_from(keys), VALUES).map("=".join), st.text(max_size=20))

    @FUZZ
    @given(path=st.sampled_from(configs), overrides=st.lists(override, max_size=4))
    def check(path, overrides):
        cfg = taken_or_refused(lambda: load_assembly_config(path, overrides), ConfigError)
        assert cfg is None or isinstance(cfg, AssemblyConfig)

    check()
