"""The deterministic commands, driven as a user types them: import, render, schema."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from digest.blog import store
from digest.blog.schemas import llm_schema, strict_problems
from digest.blog.store import OutputLock, OutputStore
from digest.files import atomic_write_text
from tests.conftest import REFERENCE_POST, REPO
from tests.helpers import digest, make_day, make_entry

POST = Path("outputs/_posts/2025-12-16-daily-papers.md")
DATA_FILE = Path("outputs/data/2025-12-16.json")


# --- round trip ---------------------------------------------------------------------------


def test_import_then_render_reproduces_the_reference_byte_for_byte() -> None:
    code, out, _ = digest("import", str(REFERENCE_POST))
    assert code == 0, out
    assert "6 papers" in out
    code, out, _ = digest("render", "--date", "2025-12-16")
    assert code == 0
    assert POST.read_bytes() == REFERENCE_POST.read_bytes()


def test_imported_day_file_keeps_both_layouts_of_the_reference() -> None:
    digest("import", str(REFERENCE_POST))
    day = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert day["time"] == "08:15:00" and day["tags"] == ["papers", "hugginface"]
    styles = [paper["style"] for paper in day["papers"]]
    assert styles[3] == {"intro_labels": False, "bullets": True}
    assert all(
        style == {"intro_labels": True, "bullets": False}
        for i, style in enumerate(styles)
        if i != 3
    )
    fourth = day["papers"][3]
    assert fourth["arxiv_id"] == "2512.13006"
    assert fourth["digest"]["introduction"]["goal"].startswith("본 논문은 텍스트-이미지 생성에서")
    assert len(day["papers"][1]["digest"]["method"]) == 3
    assert fourth["provenance"] == {
        **fourth["provenance"],
        "source": "import",
        "imported_from": REFERENCE_POST.name,
    }


def test_importing_twice_is_idempotent_and_a_changed_day_needs_force(tmp_path: Path) -> None:
    assert digest("import", str(REFERENCE_POST))[0] == 0
    code, out, _ = digest("import", str(REFERENCE_POST))
    assert code == 0 and "unchanged" in out
    edited = tmp_path / REFERENCE_POST.name
    edited.write_text(
        REFERENCE_POST.read_text(encoding="utf-8").replace("LongVie 2:", "LongVie 3:"),
        encoding="utf-8",
    )
    before = DATA_FILE.read_bytes()
    code, _, err = digest("import", str(edited))
    assert code == 2 and "already exists and differs" in err and "--force" in err
    assert DATA_FILE.read_bytes() == before
    assert digest("import", "--force", str(edited))[0] == 0
    assert "LongVie 3:" in DATA_FILE.read_text(encoding="utf-8")


def test_a_post_saved_with_a_byte_order_mark_imports_as_the_same_day(tmp_path: Path) -> None:
    with_bom = tmp_path / REFERENCE_POST.name
    with_bom.write_bytes(b"\xef\xbb\xbf" + REFERENCE_POST.read_bytes())
    assert digest("import", str(with_bom))[0] == 0
    assert digest("render")[0] == 0
    assert POST.read_bytes() == REFERENCE_POST.read_bytes()


def test_a_day_file_from_before_a_new_field_is_the_same_day() -> None:
    # The committed outputs/ were imported before provenance had "calls" and later fields.
    older = json.loads((REPO / "outputs/data/2025-12-16.json").read_text(encoding="utf-8"))
    for paper in older["papers"]:
        paper["provenance"].pop("calls", None)
        paper["provenance"].pop("grounding_repairs", None)
    DATA_FILE.parent.mkdir(parents=True)
    DATA_FILE.write_text(json.dumps(older, ensure_ascii=False, indent=2), encoding="utf-8")
    before = DATA_FILE.read_bytes()
    code, out, _ = digest("import", str(REFERENCE_POST))
    assert code == 0 and out.startswith(f"unchanged: {DATA_FILE}")
    assert DATA_FILE.read_bytes() == before


# --- malformed posts ----------------------------------------------------------------------

REFERENCE_LINES = REFERENCE_POST.read_text(encoding="utf-8").split("\n")


def edited_reference(line_number: int, replacement: str | None) -> str:
    lines = list(REFERENCE_LINES)
    if replacement is None:
        del lines[line_number - 1]
    else:
        lines[line_number - 1] = replacement
    return "\n".join(lines)


MALFORMED = [
    # (line to change, its replacement (None deletes it), reported line, expected words)
    (1, "layout: post", 1, "front matter starting with '---'"),
    (4, "date: yesterday", 4, "'date: YYYY-MM-DD HH:MM:SS'"),
    (4, "date: 2025-12-17 08:15:00", 4, "the date 2025-12-16 of the file name"),
    (5, "tags: [papers", 5, "valid YAML front matter"),
    (6, "categories: []\nexcerpt: hi", 7, "only the keys layout, title, date, tags, categories"),
    (10, "# 1. LongVie 2 [broken](https://arxiv.org/abs/2512.13604", 10, "a title link"),
    (10, "# 1. [LongVie 2](https://example.com/paper)", 10, "a link to https://arxiv.org/abs/ID"),
    (31, "# 3. [CAPTAIN](https://arxiv.org/abs/2512.10655)", 31, "paper number 2"),
    (14, "## Intro", 14, "'## Introduction'"),
    (
        16,
        "- Reason: 기존 비디오 월드 모델은 환경에 대한 전역적 조작 능력이 제한적이다.  ",
        16,
        "the Introduction's Motivation line",
    ),
    (19, None, 19, "'## Method'"),
    (20, None, 20, "at least one line under '## Method'"),
    (
        86,
        "sCM은 시간 스케일 정규화와 교사 속도 예측 신호를 통한 안정적 훈련을 수행하였다.  ",
        86,
        "a '- ' bullet, like the paper's other section lines",
    ),
    (23, "LongVGenBench에서 LongVie 2는 최고 성능을 보였습니다.  ", 23, "polite style"),
    (
        26,
        "The model still shows some discontinuities between clips during long generation.  ",
        26,
        "Hangul",
    ),
    (15, "- Goal: 본 연구는 **장시간** 비디오 월드 모델을 구축하는 것이다.  ", 15, "Markdown"),
]


@pytest.mark.parametrize(
    ("line", "replacement", "reported", "expected"),
    MALFORMED,
    ids=[case[3][:30] for case in MALFORMED],
)
def test_a_malformed_post_names_file_line_and_expectation(
    tmp_path: Path, line: int, replacement: str | None, reported: int, expected: str
) -> None:
    post = tmp_path / "posts" / REFERENCE_POST.name
    post.parent.mkdir()
    post.write_text(edited_reference(line, replacement), encoding="utf-8")
    code, _, err = digest("import", str(post))
    assert code == 2
    assert f"{post}:{reported}: expected " in err
    assert expected in err.replace("\n", " ")
    assert not Path("outputs/data").exists() or not any(Path("outputs/data").iterdir())


def test_one_malformed_post_does_not_stop_the_others(tmp_path: Path) -> None:
    bad = tmp_path / "2025-12-17-daily-papers.md"
    bad.write_text("---\nlayout: post\n", encoding="utf-8")
    code, _out, err = digest("import", str(bad), str(REFERENCE_POST))
    assert code == 2
    assert f"{bad}:2: expected front matter closed by a '---' line" in err
    assert "1 of 2 posts were not imported" in err
    assert DATA_FILE.exists() and not Path("outputs/data/2025-12-17.json").exists()


def test_a_post_that_is_not_utf8_or_missing_is_reported(tmp_path: Path) -> None:
    binary = tmp_path / "x.md"
    binary.write_bytes(b"---\n\xff\xfe\n")
    code, _, err = digest("import", str(binary), str(tmp_path / "missing.md"))
    assert code == 2
    assert f"{binary}:1: expected a UTF-8 text file" in err
    assert "missing.md:1: expected a readable file" in err


# --- render and render --check ------------------------------------------------------------


def write_days(count: int) -> OutputStore:
    outputs = OutputStore(Path("outputs"))
    for offset in range(count):
        day = make_day(make_entry(), date=make_day().date.replace(day=5 + offset))
        outputs.save_day(day)
    return outputs


def test_render_check_exit_codes_and_messages() -> None:
    outputs = write_days(2)
    first, second = outputs.dates()
    code, out, _ = digest("render", "--check")
    assert code == 1
    assert f"missing: {outputs.post_path(first)}" in out
    assert f"missing: {outputs.post_path(second)}" in out
    assert not outputs.posts_dir.exists()  # --check writes nothing

    assert digest("render")[0] == 0
    code, _, err = digest("render", "--check")
    assert (code, "All 2 posts are up to date.") == (0, err.strip())

    outputs.post_path(second).write_text("edited by hand\n", encoding="utf-8")
    code, out, err = digest("render", "--check")
    assert code == 1
    assert out.strip() == f"out of date: {outputs.post_path(second)}"
    assert "1 of 2 posts need 'digest render'" in err
    assert outputs.post_path(second).read_text(encoding="utf-8") == "edited by hand\n"

    code, out, _ = digest("render", "--check", "--date", first.isoformat())
    assert code == 0
    assert digest("render", "--date", second.isoformat())[0] == 0
    assert digest("render", "--check")[0] == 0


def test_render_is_a_no_op_when_posts_are_current() -> None:
    outputs = write_days(1)
    digest("render")
    post = outputs.post_path(outputs.dates()[0])
    before = post.stat().st_mtime_ns
    code, out, _ = digest("render")
    assert code == 0 and out == ""
    assert post.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "value", ["2025-13-01", "20251216", "tomorrow", "2025-12-16x", "2025-W51-2", "２０２５-12-16"]
)
def test_a_malformed_date_exits_2_naming_it(value: str) -> None:
    code, _, err = digest("render", "--date", value)
    assert code == 2
    assert f"--date '{value}' is not a date" in err
    assert "Traceback" not in err


def test_render_reports_missing_and_invalid_day_files() -> None:
    code, _, err = digest("render", "--check")
    assert code == 0 and "No day files in outputs/data; nothing to render." in err
    code, _, err = digest("render", "--date", "2026-01-05")
    assert code == 2 and "2026-01-05.json: no such day file" in err
    outputs = OutputStore(Path("outputs"))
    for day_number in (4, 6, 7):
        outputs.save_day(make_day(make_entry(), date=make_day().date.replace(day=day_number)))
    bad = Path("outputs/data/2026-01-06.json")
    day = json.loads(bad.read_text(encoding="utf-8"))
    day["papers"][0]["digest"]["results"] = ["The results are great."]
    bad.write_text(json.dumps(day), encoding="utf-8")
    code, out, err = digest("render", "--check")
    assert code == 2
    assert "2026-01-06.json: invalid day file: papers[0].digest.results[0]: " in err
    assert "1 of 3 day files could not be read." in err
    # The days around the broken one are still checked, and rendered.
    assert out.splitlines() == [
        "missing: outputs/_posts/2026-01-04-daily-papers.md",
        "missing: outputs/_posts/2026-01-07-daily-papers.md",
    ]
    code, out, _ = digest("render")
    assert code == 2 and out.count("wrote: ") == 2


def test_settings_from_environment_choose_the_output_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_OUTPUT_DIR", "site")
    assert digest("import", str(REFERENCE_POST))[0] == 0
    assert Path("site/data/2025-12-16.json").exists()
    assert digest("render")[0] == 0
    assert (
        Path("site/_posts/2025-12-16-daily-papers.md").read_bytes() == REFERENCE_POST.read_bytes()
    )


# --- schemas ------------------------------------------------------------------------------


def test_committed_schemas_are_current() -> None:
    code, _, err = digest("schema", "--check", "--dir", str(REPO / "schemas"))
    assert code == 0, err


def test_schema_check_catches_a_stale_schema(tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(REPO / "schemas", directory)
    stale = directory / "digest.schema.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace('"goal"', '"aim"'), encoding="utf-8")
    (directory / "day.schema.json").unlink()
    code, out, err = digest("schema", "--check", "--dir", str(directory))
    assert code == 1
    assert f"stale: {stale}" in out and f"stale: {directory / 'day.schema.json'}" in out
    assert "Run 'digest schema'" in err
    code, out, _ = digest("schema", "--dir", str(directory))
    assert code == 0 and out.count("wrote:") == 2
    assert digest("schema", "--check", "--dir", str(directory))[0] == 0


def test_the_llm_schema_is_accepted_by_strict_structured_outputs() -> None:
    assert strict_problems(llm_schema()) == []
    text = json.dumps(llm_schema())
    for keyword in ('"default"', '"minLength"', '"maxLength"', '"minItems"', '"maxItems"'):
        assert keyword not in text


def test_the_strict_checker_finds_what_openai_rejects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "maxLength": 3},
            "b": {"type": "array", "items": {"type": "object", "properties": {}}},
        },
        "required": ["a"],
    }
    assert strict_problems(schema) == [
        "#: needs 'additionalProperties': false",
        "#: every property must be required",
        "#/properties/a: 'maxLength' is not allowed in strict mode",
        "#/properties/b/items: needs 'additionalProperties': false",
    ]


# --- atomic writes ------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "post.md"
    atomic_write_text(target, "old\n")

    def crash(descriptor: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new\n" * 1000)
    assert target.read_text() == "old\n"
    assert [path.name for path in target.parent.iterdir()] == ["post.md"]


def test_a_rewritten_file_keeps_its_permissions_and_a_new_one_gets_the_usual_ones(
    tmp_path: Path,
) -> None:
    umask = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.md"
        atomic_write_text(fresh, "new\n")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0o600
        shared = tmp_path / "shared.md"
        shared.write_text("old\n")
        shared.chmod(0o664)
        atomic_write_text(shared, "new\n")
        assert stat.S_IMODE(shared.stat().st_mode) == 0o664
        assert shared.read_text() == "new\n"
    finally:
        os.umask(umask)


def test_render_and_import_wait_for_no_one_while_a_run_holds_the_folder() -> None:
    write_days(1)
    with OutputLock(Path("outputs")):
        code, _, err = digest("render")
        assert code == 3 and "outputs is locked by another digest run (pid" in err
        code, _, err = digest("import", str(REFERENCE_POST))
        assert code == 3
        assert digest("render", "--check")[0] == 1  # reading needs no lock
    assert not Path("outputs/data/2025-12-16.json").exists()
    assert digest("render")[0] == 0
