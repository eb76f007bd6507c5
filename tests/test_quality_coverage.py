"""Coverage reports: safe XML, every format's parser, and choosing among reports.

The coverage.py formats are real reports: a tiny project is measured by coverage.py in a
subprocess inside tmp_path. Istanbul, JaCoCo, Clover and Go reports are written by hand in
the shapes those tools write. Every broken variant from QUALITY.md has a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from daemon.domain.quality import reports, xmlsafe
from daemon.domain.quality.coverage import find_coverage, is_stale
from daemon.domain.quality.reports import parse

DAY = 86_400
T0 = 1_750_000_000  # a fixed mtime (2025-06-15), so nothing depends on the clock

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<coverage lines-valid="10" lines-covered="5">&lol9;</coverage>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE coverage [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<coverage lines-valid="10" lines-covered="5">&secret;</coverage>
"""
COBERTURA_DOCTYPE = (
    '<!DOCTYPE coverage SYSTEM "http://cobertura.sourceforge.net/xml/coverage-04.dtd">'
)


def write(path: Path, text: str | bytes, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def percent(path: Path, expected: str) -> float | None:
    return parse(str(path), expected).percent


# --- safe XML ------------------------------------------------------------------------------


def test_billion_laughs_is_refused_not_expanded(tmp_path: Path) -> None:
    with pytest.raises(xmlsafe.UnsafeXMLError, match="internal subset"):
        xmlsafe.parse_bytes(BILLION_LAUGHS)
    report = write(tmp_path / "coverage.xml", BILLION_LAUGHS)
    result = parse(str(report), "cobertura")
    assert result.percent is None
    assert result.error is not None and "refused" in result.error


def test_external_entity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(xmlsafe.UnsafeXMLError):
        xmlsafe.parse_bytes(EXTERNAL_ENTITY)
    report = write(tmp_path / "coverage.xml", EXTERNAL_ENTITY)
    with pytest.raises(xmlsafe.UnsafeXMLError):
        list(xmlsafe.iter_starts(str(report), max_depth=1))


def test_external_dtd_is_never_loaded(tmp_path: Path) -> None:
    """A plain DOCTYPE naming a DTD is accepted (Cobertura's), and the DTD is not read:
    an entity it defines stays unexpanded."""
    write(tmp_path / "evil.dtd", '<!ENTITY leak "LEAKED">')
    doc = write(tmp_path / "doc.xml", '<!DOCTYPE r SYSTEM "evil.dtd"><r a="1">&leak;</r>')
    root = xmlsafe.parse_file(str(doc))
    assert root.tag == "r"
    assert root.attrib == {"a": "1"}
    assert "LEAKED" not in (root.text or "")


def test_plain_doctype_and_tree(tmp_path: Path) -> None:
    text = f'<?xml version="1.0" ?>\n{COBERTURA_DOCTYPE}\n<coverage x="1"><a>hi</a><a/></coverage>'
    root = xmlsafe.parse_bytes(text.encode())
    assert [child.text for child in root] == ["hi", None]


def test_xml_size_limit_refuses_before_reading(tmp_path: Path) -> None:
    big = write(tmp_path / "big.xml", "<r>" + "x" * 5000 + "</r>")
    with pytest.raises(xmlsafe.XMLTooLargeError):
        xmlsafe.parse_file(str(big), max_bytes=1000)
    with pytest.raises(xmlsafe.XMLTooLargeError):
        next(xmlsafe.iter_starts(str(big), max_depth=0, max_bytes=1000))
    with pytest.raises(xmlsafe.XMLTooLargeError):
        xmlsafe.parse_bytes(b"<r/>" * 100, max_bytes=10)


@pytest.mark.parametrize(
    "doc", [b"", b"<r>", b"<r><a></r>", b"<r>&undefined;</r>", b"\xff\xfe garbage"]
)
def test_malformed_xml_is_an_xml_error(doc: bytes) -> None:
    with pytest.raises(xmlsafe.XMLError, match="not well-formed"):
        xmlsafe.parse_bytes(doc)


def test_iter_starts_stops_at_depth(tmp_path: Path) -> None:
    doc = write(tmp_path / "d.xml", "<a><b><c><d/></c></b><b2/></a>")
    starts = [(s.depth, s.tag) for s in xmlsafe.iter_starts(str(doc), max_depth=1)]
    assert starts == [(0, "a"), (1, "b"), (1, "b2")]


# --- coverage.py's own reports -------------------------------------------------------------


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A tiny project measured by coverage.py: its json, xml and lcov reports, and the total
    coverage.py itself prints."""
    project = tmp_path_factory.mktemp("measured")
    (project / "calc.py").write_text(
        textwrap.dedent(
            """\
            def add(a, b):
                return a + b


            def sign(n):
                if n > 0:
                    return 1
                if n < 0:
                    return -1
                return 0


            def unused():
                x = 1
                y = 2
                return x + y
            """
        )
    )
    (project / "run_tests.py").write_text(
        "import calc\n\nassert calc.add(1, 2) == 3\nassert calc.sign(5) == 1\n"
    )
    env = {**os.environ, "COVERAGE_FILE": str(project / ".coverage")}
    env.pop("COVERAGE_PROCESS_START", None)

    def cov(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "coverage", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    cov("run", "--include=calc.py", "run_tests.py")
    cov("json", "-o", "coverage.json")
    cov("xml", "-o", "coverage.xml")
    cov("lcov", "-o", "coverage.lcov")
    total = float(cov("report", "--format=total", "--precision=4").strip())
    return project, total


def test_coverage_py_json(measured: tuple[Path, float]) -> None:
    project, total = measured
    result = parse(str(project / "coverage.json"), "coverage.py-json")
    assert result.source == "coverage.py-json"
    assert result.percent == pytest.approx(total, abs=0.01)
    assert 0 < total < 100  # the test measures something partial


def test_coverage_py_cobertura_xml(measured: tuple[Path, float]) -> None:
    project, total = measured
    result = parse(str(project / "coverage.xml"), "cobertura")
    assert result.source == "cobertura"
    assert result.percent == pytest.approx(total, abs=0.01)


def test_coverage_py_lcov(measured: tuple[Path, float]) -> None:
    project, total = measured
    result = parse(str(project / "coverage.lcov"), "lcov")
    assert result.source == "lcov"
    assert result.percent == pytest.approx(total, abs=0.01)


def test_find_coverage_on_real_reports(measured: tuple[Path, float], tmp_path: Path) -> None:
    project, total = measured
    copy = tmp_path / "p"
    for name, age in (("coverage.json", 3), ("coverage.xml", 2), ("coverage.lcov", 1)):
        write(copy / name, (project / name).read_bytes(), mtime=T0 - age * DAY)
    coverage, found = find_coverage(str(copy), last_worked_on=None)
    assert found == ["coverage.lcov", "coverage.xml", "coverage.json"]  # newest first
    assert coverage is not None
    assert coverage.source == "lcov" and coverage.path == "coverage.lcov"
    assert coverage.percent == pytest.approx(total, abs=0.01)
    assert coverage.measured_at == "2025-06-14T15:06:40.000000Z"
    assert coverage.stale is False and coverage.error is None


# --- hand-written reports of the other tools -----------------------------------------------


def istanbul(lines: Mapping[str, object]) -> str:
    metric = {"total": 4, "covered": 3, "skipped": 0, "pct": 75}
    return json.dumps(
        {
            "total": {"lines": lines, "statements": metric, "functions": metric},
            "/src/a.js": {"lines": metric},
        }
    )


def test_istanbul_summary(tmp_path: Path) -> None:
    lines = {"total": 40, "covered": 33, "skipped": 0, "pct": 82.5}
    report = write(tmp_path / "coverage" / "coverage-summary.json", istanbul(lines))
    assert parse(str(report), "istanbul-summary") == ("istanbul-summary", 82.5, None)


def test_istanbul_unknown_is_no_figure(tmp_path: Path) -> None:
    lines = {"total": 0, "covered": 0, "skipped": 0, "pct": "Unknown"}
    report = write(tmp_path / "s.json", istanbul(lines))
    result = parse(str(report), "istanbul-summary")
    assert result.percent is None
    assert result.error == "total.lines.pct unknown"


def test_istanbul_unknown_with_counts_uses_them(tmp_path: Path) -> None:
    report = write(tmp_path / "s.json", istanbul({"total": 8, "covered": 2, "pct": "Unknown"}))
    assert percent(report, "istanbul-summary") == 25.0


JACOCO = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!DOCTYPE report PUBLIC "-//JACOCO//DTD Report 1.1//EN" "report.dtd">
<report name="demo">
  <sessioninfo id="host-1" start="1" dump="2"/>
  <package name="com/example">
    <class name="com/example/App" sourcefilename="App.java">
      <method name="main" desc="()V" line="5">
        <counter type="LINE" missed="0" covered="2"/>
      </method>
      <counter type="LINE" missed="1" covered="2"/>
    </class>
    <sourcefile name="App.java">
      <line nr="5" mi="0" ci="4" mb="0" cb="0"/>
      <counter type="LINE" missed="1" covered="2"/>
    </sourcefile>
    <counter type="LINE" missed="1" covered="2"/>
  </package>
  <counter type="INSTRUCTION" missed="10" covered="30"/>
  <counter type="LINE" missed="3" covered="9"/>
  <counter type="METHOD" missed="1" covered="4"/>
</report>
"""


def test_jacoco_report_level_line_counter(tmp_path: Path) -> None:
    report = write(tmp_path / "target/site/jacoco/jacoco.xml", JACOCO)
    assert parse(str(report), "jacoco") == ("jacoco", 75.0, None)


def test_jacoco_without_report_counter(tmp_path: Path) -> None:
    cut = JACOCO.replace('<counter type="LINE" missed="3" covered="9"/>', "")
    result = parse(str(write(tmp_path / "j.xml", cut)), "jacoco")
    assert result.percent is None and result.error == "no report-level LINE counter"


OPENCLOVER = """<?xml version="1.0" encoding="UTF-8"?>
<coverage generated="1700000000000" clover="4.4.1">
  <project timestamp="1700000000000" name="demo">
    <metrics statements="20" coveredstatements="15" conditionals="4" coveredconditionals="2"
      methods="5" coveredmethods="4" elements="29" coveredelements="21" loc="100" ncloc="80"/>
    <package name="a">
      <metrics statements="20" coveredstatements="1"/>
      <file name="A.java"><metrics statements="20" coveredstatements="1"/>
        <line num="1" count="1" type="stmt"/></file>
    </package>
  </project>
  <testproject timestamp="1700000000000" name="tests">
    <metrics statements="50" coveredstatements="50"/>
  </testproject>
</coverage>
"""
PHPUNIT_CLOVER = """<?xml version="1.0" encoding="UTF-8"?>
<coverage generated="1700000000">
  <project timestamp="1700000000">
    <file name="/app/src/A.php">
      <class name="A" namespace="global">
        <metrics complexity="2" methods="2" coveredmethods="1"
          statements="8" coveredstatements="1"/>
      </class>
      <line num="5" type="stmt" count="1"/>
      <metrics loc="20" ncloc="15" classes="1" methods="2" coveredmethods="1"
        statements="8" coveredstatements="1" elements="10" coveredelements="2"/>
    </file>
    <metrics files="1" loc="20" ncloc="15" classes="1" methods="2" coveredmethods="1"
      conditionals="0" coveredconditionals="0" statements="8" coveredstatements="6"
      elements="10" coveredelements="7"/>
  </project>
</coverage>
"""


def test_clover_openclover_metrics_first(tmp_path: Path) -> None:
    report = write(tmp_path / "clover.xml", OPENCLOVER)
    assert parse(str(report), "clover") == ("clover", 75.0, None)


def test_clover_phpunit_metrics_last(tmp_path: Path) -> None:
    report = write(tmp_path / "build/logs/clover.xml", PHPUNIT_CLOVER)
    assert parse(str(report), "clover") == ("clover", 75.0, None)


def test_clover_elements_when_no_statements(tmp_path: Path) -> None:
    text = OPENCLOVER.replace('statements="20" coveredstatements="15"', "")
    assert percent(write(tmp_path / "c.xml", text), "clover") == pytest.approx(21 / 29 * 100)


def test_format_is_read_from_the_content(tmp_path: Path) -> None:
    """A coverage.xml written by a Clover reporter is read as Clover."""
    report = write(tmp_path / "coverage.xml", OPENCLOVER)
    assert parse(str(report), "cobertura").source == "clover"
    other = write(tmp_path / "other.xml", "<testsuites><testsuite/></testsuites>")
    assert parse(str(other), "cobertura").error == "not a coverage report (<testsuites>)"


GO_PROFILE = """mode: set
example.com/m/a.go:3.20,5.2 1 1
example.com/m/a.go:7.20,9.2 1 0
example.com/m/b.go:11.30,14.2 2 1
"""


def test_go_profile(tmp_path: Path) -> None:
    report = write(tmp_path / "coverage.out", GO_PROFILE)
    assert parse(str(report), "go-profile") == ("go-profile", 75.0, None)


def test_go_profile_duplicate_blocks_counted_once(tmp_path: Path) -> None:
    """Profiles concatenated from two runs: each block once, covered if either run hit it."""
    second = GO_PROFILE.replace("9.2 1 0", "9.2 1 3").replace("14.2 2 1", "14.2 2 0")
    report = write(tmp_path / "cover.out", GO_PROFILE + second + "example.com/m/a.go:1.1,")
    assert percent(report, "go-profile") == 100.0


def test_go_profile_needs_its_mode_line(tmp_path: Path) -> None:
    report = write(tmp_path / "cover.out", GO_PROFILE.split("\n", 1)[1])
    assert percent(report, "go-profile") is None


LCOV_DUPLICATES = """TN:
SF:/src/a.js
DA:1,1
DA:2,0
DA:3,0
LF:3
LH:1
end_of_record
SF:/src/a.js
DA:1,0
DA:2,5,abcdef
DA:3,0
LF:3
LH:1
end_of_record
SF:/src/b.js
DA:1,1
LF:1
LH:1
end_of_record
"""


def test_lcov_duplicate_blocks_merge_by_line(tmp_path: Path) -> None:
    """Summed, a.js would count 6 lines and 2 hits (3/7); merged it is 3 lines, 2 hit."""
    report = write(tmp_path / "lcov.info", LCOV_DUPLICATES)
    assert percent(report, "lcov") == 75.0


def test_lcov_summaries_only_take_the_largest(tmp_path: Path) -> None:
    text = (
        "SF:a\nLF:10\nLH:4\nend_of_record\nSF:a\nLF:10\nLH:6\nend_of_record\nSF:b\nLF:10\nLH:10\n"
    )
    assert percent(write(tmp_path / "lcov.info", text), "lcov") == 80.0  # (6 + 10) / 20


def test_lcov_truncated_record_still_counts(tmp_path: Path) -> None:
    report = write(tmp_path / "lcov.info", LCOV_DUPLICATES[: LCOV_DUPLICATES.index("LF:1")])
    assert percent(report, "lcov") == 75.0


def test_simplecov_last_run(tmp_path: Path) -> None:
    new = write(tmp_path / "a.json", '{"result": {"line": 91.5, "branch": 80.0}}')
    old = write(tmp_path / "b.json", '{"result": {"covered_percent": 64.25}}')
    assert parse(str(new), "simplecov") == ("simplecov", 91.5, None)
    assert percent(old, "simplecov") == 64.25


# --- broken reports ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "text", "error"),
    [
        ("coverage.json", "coverage.py-json", "", "empty file"),
        ("coverage.json", "coverage.py-json", '{"totals": {"percent_cov', "not valid JSON"),
        ("coverage.json", "coverage.py-json", '{"totals": {"percent_covered": NaN}}', "JSON"),
        ("coverage.json", "coverage.py-json", '{"totals": {"percent_covered": "x"}}', "shape"),
        ("coverage.json", "coverage.py-json", '{"totals": {"num_statements": 0}}', "no state"),
        ("coverage.json", "coverage.py-json", '{"meta": {}}', "not a coverage report"),
        ("coverage.json", "coverage.py-json", "[1, 2]", "shape"),
        ("coverage.xml", "cobertura", "", "empty file"),
        ("coverage.xml", "cobertura", '<coverage line-rate="0.5" lines-valid="10"', "well-formed"),
        ("coverage.xml", "cobertura", '<coverage line-rate="NaN"/>', "no usable"),
        ("coverage.xml", "cobertura", '<coverage lines-valid="0" lines-covered="0"/>', "no lines"),
        ("coverage.xml", "cobertura", '<coverage line-rate="1.5"/>', "no usable"),
        (
            "jacoco.xml",
            "jacoco",
            '<report><counter type="LINE" missed="0" covered="0"/></report>',
            "no lines",
        ),
        (
            "clover.xml",
            "clover",
            '<coverage><project><metrics statements="0"/></project></coverage>',
            "no line",
        ),
        ("lcov.info", "lcov", "", "empty file"),
        ("lcov.info", "lcov", "TN:\nSF:a\nLF:0\nLH:0\nend_of_record\n", "no lines"),
        ("lcov.info", "lcov", "hello\n", "no SF records"),
        ("cover.out", "go-profile", "mode: set\n", "no lines"),
        ("cover.out", "go-profile", "   \n\n", "empty file"),
    ],
)
def test_broken_reports_give_no_figure(
    tmp_path: Path, name: str, expected: str, text: str, error: str
) -> None:
    result = parse(str(write(tmp_path / name, text)), expected)
    assert result.percent is None
    assert result.source == expected
    assert result.error is not None and error in result.error


def test_cobertura_nan_rate_uses_counts(tmp_path: Path) -> None:
    text = f'{COBERTURA_DOCTYPE}<coverage line-rate="NaN" lines-valid="8" lines-covered="6"/>'
    assert percent(write(tmp_path / "coverage.xml", text), "cobertura") == 75.0


def test_cobertura_rate_without_counts(tmp_path: Path) -> None:
    text = '<coverage line-rate="0.625" branch-rate="0"><packages/></coverage>'
    assert percent(write(tmp_path / "coverage.xml", text), "cobertura") == 62.5


def test_reports_over_the_size_limit_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "REPORT_MAX_BYTES", 100)
    big_json = write(tmp_path / "coverage.json", '{"totals": {"percent_covered": 50}}' + " " * 200)
    big_xml = write(
        tmp_path / "coverage.xml", '<coverage lines-valid="2" lines-covered="1">' + " " * 200
    )
    assert "limit" in (parse(str(big_json), "coverage.py-json").error or "")
    assert "limit" in (parse(str(big_xml), "cobertura").error or "")


def test_a_fifo_in_place_of_a_report_is_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "coverage.json")
    write(tmp_path / "lcov.info", "SF:a\nDA:1,1\n")
    coverage, found = find_coverage(str(tmp_path), last_worked_on=None)
    assert found == ["lcov.info"]
    assert coverage is not None and coverage.percent == 100.0
    result = parse(str(tmp_path / "coverage.json"), "coverage.py-json")  # never blocks
    assert result.percent is None


# --- choosing among reports ----------------------------------------------------------------


def test_two_formats_the_newest_wins(tmp_path: Path) -> None:
    write(tmp_path / "coverage.json", '{"totals": {"percent_covered": 40.0}}', mtime=T0 - DAY)
    write(tmp_path / "coverage/lcov.info", "SF:a\nDA:1,1\nDA:2,1\nDA:3,1\nDA:4,0\n", mtime=T0)
    coverage, found = find_coverage(str(tmp_path), last_worked_on=None)
    assert coverage is not None
    assert (coverage.source, coverage.path, coverage.percent) == (
        "lcov",
        "coverage/lcov.info",
        75.0,
    )
    assert found == ["coverage/lcov.info", "coverage.json"]
    os.utime(tmp_path / "coverage.json", (T0 + DAY, T0 + DAY))
    coverage, found = find_coverage(str(tmp_path), last_worked_on=None)
    assert coverage is not None and coverage.percent == 40.0
    assert found == ["coverage.json", "coverage/lcov.info"]


def test_a_broken_newest_report_falls_back_to_an_older_one(tmp_path: Path) -> None:
    write(tmp_path / "coverage.json", '{"totals": {"percent_cov', mtime=T0)  # being rewritten
    write(
        tmp_path / "coverage.xml", '<coverage lines-valid="4" lines-covered="1"/>', mtime=T0 - DAY
    )
    coverage, found = find_coverage(str(tmp_path), last_worked_on=None)
    assert coverage is not None and coverage.path == "coverage.xml" and coverage.percent == 25.0
    assert found == ["coverage.json", "coverage.xml"]


def test_only_broken_reports_give_the_newest_with_its_error(tmp_path: Path) -> None:
    write(tmp_path / "coverage.json", "", mtime=T0 - DAY)
    write(tmp_path / "coverage/coverage-summary.json", istanbul({"pct": "Unknown"}), mtime=T0)
    coverage, _ = find_coverage(str(tmp_path), last_worked_on=None)
    assert coverage is not None
    assert coverage.path == "coverage/coverage-summary.json"
    assert coverage.source == "istanbul-summary"
    assert coverage.percent is None and coverage.error is not None


def test_no_reports(tmp_path: Path) -> None:
    assert find_coverage(str(tmp_path), last_worked_on=None) == (None, [])
    assert find_coverage(str(tmp_path / "missing"), last_worked_on=None) == (None, [])


def test_listed_report_places(tmp_path: Path) -> None:
    write(tmp_path / "unit.coverprofile", GO_PROFILE, mtime=T0)
    write(tmp_path / "coverage/shard-1.info", "SF:a\nDA:1,1\n", mtime=T0 - 1)
    write(
        tmp_path / "TestResults/3f2a/coverage.cobertura.xml",
        '<coverage line-rate="0.5"/>',
        mtime=T0 - 2,
    )
    write(tmp_path / "coverage.txt", "not a go profile\n", mtime=T0 + 5)  # sniffed out
    write(tmp_path / "build/reports/jacoco/test/jacocoTestReport.xml", JACOCO, mtime=T0 - 3)
    coverage, found = find_coverage(str(tmp_path), last_worked_on=None)
    assert found == [
        "unit.coverprofile",
        "coverage/shard-1.info",
        "TestResults/3f2a/coverage.cobertura.xml",
        "build/reports/jacoco/test/jacocoTestReport.xml",
    ]
    assert coverage is not None and coverage.source == "go-profile"


def test_stale_report(tmp_path: Path) -> None:
    write(tmp_path / "coverage.json", '{"totals": {"percent_covered": 90}}', mtime=T0 - 40 * DAY)
    worked = "2025-06-15T15:06:40Z"  # T0
    coverage, _ = find_coverage(str(tmp_path), last_worked_on=worked)
    assert coverage is not None and coverage.stale is True
    os.utime(tmp_path / "coverage.json", (T0 - 20 * DAY, T0 - 20 * DAY))
    coverage, _ = find_coverage(str(tmp_path), last_worked_on=worked)
    assert coverage is not None and coverage.stale is False


def test_is_stale_edges() -> None:
    assert is_stale(T0 - 31 * DAY, "2025-06-15T15:06:40.000000Z") is True
    assert is_stale(T0 - 29 * DAY, "2025-06-15T15:06:40.000000Z") is False
    assert is_stale(T0 - 31 * DAY, "2025-06-15T15:06:40") is True  # naive means UTC
    assert is_stale(T0 - 999 * DAY, None) is False
    assert is_stale(T0 - 999 * DAY, "yesterday") is False
