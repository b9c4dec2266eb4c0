"""`hpctf metrics`, `hpctf status` and `submit --wait`'s metrics line, on runs recorded as
`hpctf submit` records them, with metrics files as jobs leave them."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hpctf.cli import cli
from hpctf.cli import metrics as metrics_cli

from .metricsruns import curve, line, record_run, write_rank
from .recorded import private_home


@pytest.fixture
def home(tmp_path, monkeypatch):
    return private_home(tmp_path, monkeypatch)


@pytest.fixture
def two_runs(home):
    """Jobs 101 and 102: loss and accuracy over 50 steps, 102's loss a little lower."""
    for i, job in enumerate(("101", "102")):
        run_dir = record_run(home, job)
        text = "".join(line("loss", s, 1.0 / (s + 1 + i)) + line("accuracy", s, 1 - 1 / (s + 2)) for s in range(50))
        write_rank(run_dir, 0, text + line("loss", 50, math.nan) + '{"name":"loss","st')
    return home


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_one_run_is_a_table_of_its_metrics(two_runs):
    done = invoke("metrics", "101")
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        "METRIC    GOAL           LAST      BEST      BEST STEP  COUNT  LAST STEP  NAN/INF",
        "loss      min (guessed)  nan       0.02      49         51     50         1",
        "accuracy  max (guessed)  0.980392  0.980392  49         50     49         0",
    ]


def test_several_runs_side_by_side_and_goals_given(two_runs):
    done = invoke("metrics", "101", "102", "--goal", "loss=max", "--no-chart")
    assert done.exit_code == 0, done.output
    rows = [row.split() for row in done.output.splitlines()]
    assert rows[0][:3] == ["METRIC", "JOB", "GOAL"]
    assert [r[:5] for r in rows[1:]] == [
        ["loss", "101", "max", "nan", "1"],
        ["loss", "102", "max", "nan", "0.5"],
        ["accuracy", "101", "max", "(guessed)", "0.980392"],
        ["accuracy", "102", "max", "(guessed)", "0.980392"],
    ]


def test_a_run_with_no_metrics_says_where_it_looked_and_exits_0(two_runs):
    run_dir = record_run(two_runs, "103", state="RUNNING")
    (run_dir / "metrics").mkdir()
    done = invoke("metrics", "103")
    assert done.exit_code == 0
    assert done.output == (
        f"job 103: no metrics yet: nothing in {run_dir / 'metrics'} (hpctf.log_metric's rank-<R>.jsonl) "
        f"nor in {run_dir / 'tensorboard'} (TensorBoard event files)\n"
    )
    both = invoke("metrics", "103", "101", "--no-chart")
    assert both.output.startswith("job 103: no metrics yet") and "loss      101" in both.output


def test_json_and_csv_carry_every_point(two_runs):
    rows = json.loads(invoke("metrics", "101", "102", "--json").output)
    assert len(rows) == 2 * (51 + 50)
    assert rows[0] == {"job": "101", "name": "loss", "step": 0, "value": 1.0, "rank": 0, "time": 1764783600.0}
    assert math.isnan(rows[50]["value"]) and rows[50]["step"] == 50
    table = list(csv.DictReader(io.StringIO(invoke("metrics", "102", "--csv").output)))
    assert len(table) == 101 and list(table[0]) == ["job", "name", "step", "value", "rank", "time"]
    assert table[1] == {
        "job": "102",
        "name": "loss",
        "step": "1",
        "value": "0.3333333333333333",
        "rank": "0",
        "time": "1764783600.0",
    }
    assert math.isnan(float(table[50]["value"]))
    assert json.loads(invoke("metrics", "101", "--json").output) == [r for r in rows if r["job"] == "101"]


def test_odd_names_survive_json_and_csv(home):
    run_dir = record_run(home, "7")
    names = ['say "hi", \\o/', "λ 損失", "a,b\nc"]
    write_rank(run_dir, 0, "".join(curve(name, range(2)) for name in names))
    assert [r["name"] for r in json.loads(invoke("metrics", "7", "--json").output)][::2] == names
    assert [r["name"] for r in csv.DictReader(io.StringIO(invoke("metrics", "7", "--csv").output))][::2] == names
    table = invoke("metrics", "7").output
    assert "λ 損失" in table and 'say "hi", \\o/' in table


def test_json_writes_infinities_and_missing_times_as_python_reads_them(home):
    run_dir = record_run(home, "9")
    write_rank(run_dir, 0, '{"name":"g","step":0,"value":3}\n' + line("g", 1, -math.inf) + line("g", 2, math.inf))
    write_rank(run_dir, 4, line("g", 0, 0.5, time=1.25))
    rows = json.loads(invoke("metrics", "9", "--json").output)
    assert [(r["step"], r["value"], r["rank"], r["time"]) for r in rows] == [
        (0, 3.0, 0, None),
        (1, -math.inf, 0, 1764783600.0),
        (2, math.inf, 0, 1764783600.0),
        (0, 0.5, 4, 1.25),
    ]
    assert [r["value"] for r in csv.DictReader(io.StringIO(invoke("metrics", "9", "--csv").output))] == [
        "3.0",
        "-inf",
        "inf",
        "0.5",
    ]


def test_the_terminal_chart_when_asked_for(two_runs):
    done = invoke("metrics", "101", "102", "--chart", "--metric", "accuracy", "-m", "loss")
    assert done.exit_code == 0, done.output
    chart = done.output.splitlines()[5:]  # after the table: its header and four rows
    assert chart[0].strip() == "accuracy" and "loss" in [row.strip() for row in chart]
    assert "job 101" in done.output and "job 102" in done.output and "step" in chart[-1]
    assert sum(ch in "▘▝▀▖▌▞▛▗▚▐▜▄▙▟█" for ch in done.output) > 50  # plotext drew the lines
    assert "\x1b[" not in done.output  # not a terminal: no colours
    plain = invoke("metrics", "101", "102", "--no-chart")
    assert "▄" not in plain.output and plain.output.count("\n") == 5


def test_the_default_chart_is_loss_else_the_first_logged(home):
    run_dir = record_run(home, "8")
    write_rank(run_dir, 0, curve("lr", range(20)) + curve("top1", range(20)))
    chart = invoke("metrics", "8", "--chart").output.splitlines()[3:]  # after the table
    assert chart[0].strip() == "lr" and "top1" not in "\n".join(chart)


def test_plot_writes_a_png_with_the_lines_drawn(home, tmp_path):
    from matplotlib.image import imread

    write_rank(record_run(home, "201"), 0, curve("loss", range(100)) + curve("acc", range(100)))
    write_rank(record_run(home, "202"), 0, curve("loss", range(100), lambda s: 2 - s / 100))
    png = tmp_path / "out" / "loss.png"
    png.parent.mkdir()
    done = invoke("metrics", "201", "202", "--plot", str(png))
    assert done.exit_code == 0, done.output
    assert done.output.endswith(f"wrote {png}\n")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    pixels = imread(png)
    blue = (abs(pixels[..., 0] - 0x1F / 255) < 0.05) & (abs(pixels[..., 2] - 0xB4 / 255) < 0.05)
    orange = (abs(pixels[..., 0] - 1.0) < 0.05) & (abs(pixels[..., 1] - 0x7F / 255) < 0.05)
    # matplotlib's first two line colours (job 201, job 202), each across most of the panel's width
    assert len(set(blue.nonzero()[1])) > 0.6 * pixels.shape[1]
    assert len(set(orange.nonzero()[1])) > 0.6 * pixels.shape[1]
    two = tmp_path / "two.png"
    assert invoke("metrics", "201", "--plot", str(two), "-m", "loss", "-m", "acc").exit_code == 0
    assert imread(two).shape[0] == 2 * pixels.shape[0]  # one panel a metric, one above the other


def test_plot_without_matplotlib_names_the_install(two_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    done = CliRunner().invoke(cli, ["metrics", "101", "--plot", str(tmp_path / "x.png")])
    assert done.exit_code == 2
    assert done.output.splitlines()[-1] == (
        "hpctf: --plot needs matplotlib, which is not installed: pip install 'hpctf[plot]' (or: pip install matplotlib)"
    )


def test_plot_to_a_folder_that_is_not_there_is_one_line(two_runs, tmp_path):
    done = CliRunner().invoke(cli, ["metrics", "101", "--plot", str(tmp_path / "no" / "such" / "x.png")])
    assert done.exit_code == 2
    assert done.output.splitlines()[-1].startswith(
        f"hpctf: --plot='{tmp_path / 'no' / 'such' / 'x.png'}': cannot write it ("
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["999"], "hpctf: no run with job id '999' in "),
        (["101", "--goal", "loss=up"], "hpctf: --goal='loss=up': must be NAME=min or NAME=max"),
        (["101", "--goal", "loss"], "hpctf: --goal='loss': must be NAME=min or NAME=max"),
        (["101", "-m", "nope"], "hpctf: --metric='nope': no run logged it; logged: 'loss', 'accuracy'"),
        (["101", "--json", "--csv"], "hpctf: --json and --csv: choose one"),
        (
            ["101", "--follow", "--json"],
            "hpctf: --follow redraws the table and chart: it takes no --json, --csv or --plot",
        ),
        ([], "Error: Missing argument 'JOB [JOB...]'."),
    ],
)
def test_bad_input_is_one_line_and_exit_2(two_runs, args, message):
    done = CliRunner().invoke(cli, ["metrics", *args])
    assert done.exit_code == 2
    assert done.output.splitlines()[-1].startswith(message), done.output
    assert "Traceback" not in done.output


def test_follow_redraws_until_the_runs_end(two_runs, monkeypatch):
    import hpctf.runs

    states = iter(["RUNNING", "RUNNING", "COMPLETED"])

    def refresh(registry, records):
        for record in records:
            record.state = next(states)
        return records

    sleeps = []

    def sleep(seconds):  # nothing new before the second look; more steps before the third
        sleeps.append(seconds)
        if len(sleeps) == 2:
            write_rank(two_runs / "runs" / "20261203-120000-train-101", 0, curve("loss", range(60)))

    monkeypatch.setattr(hpctf.runs, "refresh", refresh)
    monkeypatch.setattr(metrics_cli.time, "sleep", sleep)
    done = invoke("metrics", "101", "--follow")
    assert done.exit_code == 0
    pages = done.output.split("job 101 ")[1:]
    assert [page.split()[0] for page in pages] == ["RUNNING", "COMPLETED"]  # the unchanged page once
    assert "loss      min (guessed)  nan" in pages[0] and "60     59" in pages[1]
    assert sleeps == [metrics_cli.FOLLOW_POLL_S] * 2


def test_ctrl_c_stops_follow_cleanly(two_runs, monkeypatch):
    import hpctf.runs

    write_rank(record_run(two_runs, "110", state="RUNNING"), 0, curve("loss", range(3)))
    monkeypatch.setattr(hpctf.runs, "refresh", lambda registry, records: records)

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(metrics_cli.time, "sleep", interrupt)
    done = CliRunner().invoke(cli, ["metrics", "110", "--follow"])
    assert done.exit_code == 0 and done.exception is None
    assert done.output.startswith("job 110 RUNNING") and "loss" in done.output and "Traceback" not in done.output


def test_status_shows_the_latest_metrics(two_runs):
    write_rank(two_runs / "runs" / "20261203-120000-train-102", 0, curve("loss", range(12)) + line("acc", 11, 0.93))
    done = invoke("status", "102")
    assert done.output.splitlines()[-1] == "metrics    step 11  loss=0.08333  acc=0.93"
    status = json.loads(invoke("status", "102", "--json").output)
    assert status["metrics"] == {"step": 11, "values": {"loss": 1 / 12, "acc": 0.93}}
    record_run(two_runs, "104")
    assert "metrics" not in invoke("status", "104").output
    assert json.loads(invoke("status", "104", "--json").output)["metrics"] is None


def test_submit_wait_prints_the_metrics_line_when_it_changes(tmp_path, monkeypatch):
    from rich.console import Console

    from hpctf.cli.jobs import _MetricsLine
    from hpctf.registry import Registry

    run_dir = record_run(tmp_path, "5", state="RUNNING")
    record = Registry(tmp_path / "registry.sqlite").get("5")
    out = io.StringIO()
    shown = _MetricsLine(record, Console(file=out, width=200))
    shown.tick()  # nothing logged yet: nothing shown
    write_rank(run_dir, 0, line("loss", 3, 0.5) + line("accuracy", 3, 0.25))
    shown.tick()
    write_rank(run_dir, 0, line("loss", 3, 0.5) + line("accuracy", 3, 0.25) + line("loss", 4, 0.4))
    shown.tick()  # within EVERY_S of the last line: not yet
    shown.tick(final=True)
    shown.tick(final=True)  # unchanged: not again
    assert out.getvalue().splitlines() == ["job 5: step 3  loss=0.5  accuracy=0.25", "job 5: step 4  loss=0.4"]


def test_metrics_imports_no_heavy_package_it_does_not_need(two_runs):
    code = (
        "import sys; from hpctf.cli import cli\n"
        "try:\n    cli(['metrics', '101', '102', '--no-chart'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('tensorflow', 'tensorboard', 'numpy', 'plotext', 'matplotlib', 'pandas')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    env = {**os.environ, "HPCTF_HOME": str(two_runs)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]" and "loss      101" in done.stdout
