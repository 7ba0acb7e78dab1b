"""JSONL loading: up-front checks with file:line, skip-and-count, domain filter, on-demand record reads."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from sampler.config import SamplerConfig
from sampler.records import RecordError, load_records


def _touch(root, rel):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.startswith("d/"):
        path.write_text("(define (domain ferry))\n")
    else:
        path.write_text("(define (problem p) (:domain ferry) (:goal (and)))\n")


def _good(i: int, cars: int = 2) -> dict:
    return {"prompt": f"ferry task {i}", "meta": {"problem_file": f"p/ferry-l3-c{cars}-s{i}.pddl",
                                                   "domain_file": "d/ferry.pddl"}}


@pytest.fixture
def root(tmp_path):
    _touch(tmp_path, "d/ferry.pddl")
    for i in range(4):
        _touch(tmp_path, f"p/ferry-l3-c2-s{i}.pddl")
    return tmp_path


def _write(root, domain, lines):
    (root / f"{domain}.jsonl").write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def _cfg(root, **kw) -> SamplerConfig:
    return SamplerConfig(data_root=str(root), **kw)


def test_loads_and_reads_records_back_by_offset(root):
    _write(root, "ferry", [_good(0), "", _good(1), _good(2)])
    idx = load_records(_cfg(root)).domains["ferry"]
    assert len(idx) == 3
    assert idx.line_index.tolist() == [0, 2, 3]  # blank line 1 is no record
    assert idx.record(1)["prompt"] == "ferry task 1"
    assert idx.difficulty_params(2) == {"locations": 3, "cars": 2, "seed": 2}
    assert idx.scores.tolist() == [5 * 2 + 3 * 1 + 2 * 3] * 3
    clone = pickle.loads(pickle.dumps(idx))  # crosses Ray: the open handle is not pickled
    assert clone.record(0) == idx.record(0)


BAD = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "record must be a JSON object, got list"),
    ({"meta": _good(0)["meta"]}, "prompt must be a non-empty string, got NoneType"),
    ({"prompt": "x", "meta": "p.pddl"}, "meta must be a JSON object, got str"),
    ({"prompt": "x", "meta": {"domain_file": "d/ferry.pddl"}}, "meta.problem_file must be a non-empty string"),
    ({"prompt": "x", "meta": {"problem_file": "p/ferry-l3-c2-s0.pddl"}}, "meta.domain_file must be a non-empty"),
    ({"prompt": "x", "meta": {"problem_file": "p/ferry-l3-c2-s9.pddl", "domain_file": "d/ferry.pddl"}},
     "does not exist under pddl_root"),
    ({"prompt": "x", "meta": {"problem_file": "../ferry-l3-c2-s0.pddl", "domain_file": "d/ferry.pddl"}},
     "escapes pddl_root"),
    ({"prompt": "x", "meta": {"problem_file": "p/../../x/ferry-l3-c2-s0.pddl", "domain_file": "d/ferry.pddl"}},
     "escapes pddl_root"),
    ({"prompt": "x", "meta": {"problem_file": "/etc/passwd", "domain_file": "d/ferry.pddl"}}, "escapes pddl_root"),
]


@pytest.mark.parametrize(("line", "message"), BAD)
def test_bad_line_fails_with_file_line_and_reason(root, line, message):
    _write(root, "ferry", [_good(0), _good(1), line])
    with pytest.raises(RecordError) as err:
        load_records(_cfg(root))
    assert str(err.value).startswith(f"{root / 'ferry.jsonl'}:3: ")
    assert message in str(err.value)


def test_absolute_path_inside_data_root_is_accepted(root):
    rec = _good(0)
    rec["meta"]["problem_file"] = str(root / "p/ferry-l3-c2-s0.pddl")
    _write(root, "ferry", [rec])
    assert len(load_records(_cfg(root)).domains["ferry"]) == 1


def test_skip_mode_counts_bad_lines(root, caplog):
    _write(root, "ferry", [_good(0), "{oops", {"prompt": 3, "meta": {}}, _good(1)])
    with caplog.at_level(logging.WARNING):
        index = load_records(_cfg(root, on_bad_record="skip"))
    assert len(index.domains["ferry"]) == 2 and index.skipped == {"ferry": 2}
    assert "skipped 2 bad records" in caplog.text


def test_unparsed_file_name_errors_or_defaults(root, caplog):
    _touch(root, "p/odd-name.pddl")
    odd = {"prompt": "x", "meta": {"problem_file": "p/odd-name.pddl", "domain_file": "d/ferry.pddl"}}
    _write(root, "ferry", [_good(0), odd])
    with pytest.raises(RecordError, match=r"ferry.jsonl:2: problem file name 'odd-name.pddl' of domain 'ferry'"):
        load_records(_cfg(root))
    with caplog.at_level(logging.WARNING):
        idx = load_records(_cfg(root, on_unparsed_name="default")).domains["ferry"]
    assert idx.difficulty_params(1) == {"locations": 1, "cars": 1, "seed": 1}
    assert "domain ferry: 1 problem file names do not match" in caplog.text


def test_the_builders_own_metadata_json_is_listed_not_warned_about(root, caplog):
    _write(root, "ferry", [_good(0)])
    (root / "metadata.json").write_text("{}")
    with caplog.at_level(logging.INFO):
        load_records(_cfg(root))
    (record,) = [r for r in caplog.records if "not a domain's records" in r.getMessage()]
    assert record.levelno == logging.INFO and record.getMessage().endswith(": metadata.json")
    (root / "combined.jsonl").write_text("")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_records(_cfg(root))
    (record,) = [r for r in caplog.records if "not a domain's records" in r.getMessage()]
    assert record.levelno == logging.WARNING and "combined.jsonl, metadata.json" in record.getMessage()


def test_domain_filter_and_missing_domain(root, caplog):
    _write(root, "ferry", [_good(0)])
    _write(root, "other", [_good(1)])
    with caplog.at_level(logging.WARNING):
        assert list(load_records(_cfg(root)).domains) == ["ferry"]  # other.jsonl is no known domain: ignored
    assert "ignoring 1 file(s) that are not a domain's records: other.jsonl" in caplog.text
    with pytest.raises(ValueError, match="no difficulty spec for domain 'other'"):
        load_records(_cfg(root, domains=["other"]))  # named, it is a domain and needs a spec
    assert list(load_records(_cfg(root, domains=["ferry"])).domains) == ["ferry"]
    with pytest.raises(FileNotFoundError, match="domain 'spanner' has no file"):
        load_records(_cfg(root, domains=["ferry", "spanner"]))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_records(_cfg(root / "nope"))


def test_plan_length_difficulty_needs_reference_length(root):
    rec = _good(0)
    rec["meta"]["reference_plan_length"] = 11
    _write(root, "ferry", [rec])
    idx = load_records(_cfg(root, difficulty="plan_length")).domains["ferry"]
    assert idx.scores.tolist() == [11.0] and idx.difficulty_params(0) == {"plan_length": 11}
    _write(root, "ferry", [rec, _good(1)])
    with pytest.raises(RecordError, match=r":2: meta.reference_plan_length must be an integer"):
        load_records(_cfg(root, difficulty="plan_length"))
