"""The tiny tokenizer's vocabulary reader under sampler.on_bad_record: skip (issue 19 item 2).

The pre-flight reports a bad line and the sampler skips it, but it stays in the file: before issue 19 this
reader then crashed the run after the pre-flight with a raw JSONDecodeError / KeyError (no file, no line).
"""

from __future__ import annotations

import json
from pathlib import Path

from learner.driver.bootstrap import _vocabulary_texts


def test_bad_lines_left_by_skip_mode_are_skipped_not_fatal(tmp_path: Path) -> None:
    good = {"prompt": "ferry task one", "response": "(board c1 l1)", "meta": {}}
    (tmp_path / "ferry.jsonl").write_text("\n".join([json.dumps(good), "{torn", json.dumps({"meta": {}}), "[1]",
                                                     json.dumps({"prompt": "two", "response": 7})]) + "\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "ferry.jsonl").write_text(json.dumps({"prompt": "held out"}) + "\n")
    assert _vocabulary_texts(tmp_path) == ["ferry task one", "(board c1 l1)", "two", "held out"]
