"""Reading hpctf's metrics files as jobs leave them: half-written, damaged, requeued,
several ranks, odd names; the summaries and the status line made from them."""

from __future__ import annotations

import math

import pytest

from hpctf.metrics import Row, read_run, summarise
from hpctf.metrics.jsonl import CHUNK_LINES
from hpctf.metrics.latest import latest, latest_text
from hpctf.metrics.summary import guess_goal, parse_goals

from .metricsruns import curve, line, write_rank


def points(run, name, rank=0):
    (series,) = [s for s in run.series if s.name == name and s.rank == rank]
    return list(zip(series.steps, series.values))


def test_a_run_folder_with_nothing_logged_reads_as_empty(tmp_path):
    run = read_run(tmp_path)
    assert (run.series, run.notes, run.points) == ([], [], 0)
    write_rank(tmp_path, 0, "")
    (tmp_path / "tensorboard").mkdir()
    assert read_run(tmp_path).series == []


def test_the_half_written_last_line_is_left_out_silently(tmp_path):
    write_rank(tmp_path, 0, line("loss", 0, 0.5) + line("loss", 1, 0.4) + '{"name":"loss","step":2,"val')
    run = read_run(tmp_path)
    assert points(run, "loss") == [(0, 0.5), (1, 0.4)]
    assert run.damaged == {} and run.notes == []


def test_a_file_of_one_unfinished_line_has_no_points(tmp_path):
    write_rank(tmp_path, 0, '{"name":"loss","step":0,"value":0.5')
    assert read_run(tmp_path).series == []


def test_a_damaged_middle_line_is_skipped_and_counted(tmp_path):
    # A node died mid-write; the requeued attempt appended after the cut line.
    path = write_rank(
        tmp_path, 0, line("loss", 0, 0.5) + '{"name":"loss","st' + line("loss", 1, 0.4) + "\n" + line("loss", 2, 0.3)
    )
    run = read_run(tmp_path)
    assert points(run, "loss") == [(0, 0.5), (2, 0.3)]  # the cut line swallowed step 1's start
    assert run.damaged == {str(path): 1}
    assert run.notes == [f"{path}: 1 damaged line(s) skipped (not JSON, or not a point)"]


def test_damage_in_a_big_file_costs_only_its_own_lines(tmp_path):
    n = 3 * CHUNK_LINES + 17
    text = curve("loss", range(n))
    lines = text.splitlines(keepends=True)
    lines[CHUNK_LINES + 5] = '{"name":"loss","step":\xff\xfe garbage\n'  # not JSON, in the second chunk
    lines[2 * CHUNK_LINES] = "[1, 2, 3]\n"  # JSON, but not a point
    write_rank(tmp_path, 0, "".join(lines))
    run = read_run(tmp_path)
    steps = [step for step, _ in points(run, "loss")]
    assert len(steps) == n - 2 and CHUNK_LINES + 5 not in steps and 2 * CHUNK_LINES not in steps
    assert sum(run.damaged.values()) == 2


@pytest.mark.parametrize(
    "bad",
    [
        '{"name":"loss","step":-1,"value":0.1,"time":1}',  # steps are >= 0
        '{"name":"loss","step":1.5,"value":0.1,"time":1}',
        '{"name":"loss","step":1,"value":"0.1","time":1}',
        '{"name":"loss","step":1,"value":true,"time":1}',  # a bool is not a number here
        '{"name":7,"step":1,"value":0.1,"time":1}',
        '{"name":"loss","value":0.1,"time":1}',
        '"loss"',
    ],
)
def test_a_line_that_is_json_but_not_a_point_is_counted(tmp_path, bad):
    write_rank(tmp_path, 0, line("loss", 0, 0.5) + bad + "\n" + line("loss", 2, 0.3))
    run = read_run(tmp_path)
    assert points(run, "loss") == [(0, 0.5), (2, 0.3)]
    assert sum(run.damaged.values()) == 1


def test_without_time_or_with_integer_values_a_line_is_still_a_point(tmp_path):
    write_rank(tmp_path, 0, '{"name":"n","step":0,"value":3}\n' + line("n", 1, 2.5))
    run = read_run(tmp_path)
    assert run.rows() == [Row("n", 0, 3.0, 0, None), Row("n", 1, 2.5, 0, 1764783600.0)]
    assert type(run.rows()[0].value) is float and run.damaged == {}


def test_nan_and_infinities_are_values_and_are_counted(tmp_path):
    write_rank(
        tmp_path, 0, line("loss", 0, 1.0) + line("loss", 1, math.nan) + line("loss", 2, math.inf) + line("loss", 3, 0.5)
    )
    assert "NaN" in (tmp_path / "metrics" / "rank-0.jsonl").read_text()  # the file's own tokens
    (series,) = read_run(tmp_path).series
    summary = summarise(series)
    assert (summary.best, summary.best_step, summary.last, summary.nonfinite, summary.count) == (0.5, 3, 0.5, 2, 4)
    write_rank(tmp_path, 0, line("loss", 0, -math.inf) + line("loss", 1, math.nan))
    summary = summarise(read_run(tmp_path).series[0])
    assert summary.best is None and summary.best_step is None and math.isnan(summary.last) and summary.nonfinite == 2


def test_a_requeued_attempt_logs_steps_again_and_the_later_line_wins(tmp_path):
    first = curve("loss", range(0, 6), lambda s: 10.0 + s)
    again = curve("loss", range(4, 8), lambda s: 20.0 + s)  # resumed from the step-4 checkpoint
    write_rank(tmp_path, 0, first + again)
    assert points(read_run(tmp_path), "loss") == [
        (0, 10),
        (1, 11),
        (2, 12),
        (3, 13),
        (4, 24),
        (5, 25),
        (6, 26),
        (7, 27),
    ]


@pytest.mark.parametrize(
    "name",
    ["val loss", "λ/ünïcode 損失", 'quote " inside', "back\\slash", "a/b/c", "tab\there", "comma, colon: {brace}", ""],
)
def test_names_with_odd_characters_come_back_as_written(tmp_path, name):
    write_rank(tmp_path, 0, curve(name, range(3)) + curve("loss", range(3)))
    run = read_run(tmp_path)
    assert run.names() == [name, "loss"]
    assert points(run, name) == [(0, 1.0), (1, 0.5), (2, 1 / 3)]


def test_many_names_interleaved_are_each_their_own_series(tmp_path):
    names = [f"layer{i}/norm" for i in range(20)]
    write_rank(tmp_path, 0, "".join(line(name, step, step + i) for step in range(5) for i, name in enumerate(names)))
    run = read_run(tmp_path)
    assert run.names() == names
    assert points(run, "layer7/norm") == [(s, s + 7.0) for s in range(5)]


def test_several_ranks_are_read_rank_by_rank(tmp_path):
    write_rank(tmp_path, 2, curve("loss", range(2), lambda s: 2.0))
    write_rank(tmp_path, 0, curve("loss", range(3)) + curve("accuracy", range(3), lambda s: 0.9))
    write_rank(tmp_path, 10, curve("loss", range(1), lambda s: 10.0))
    (tmp_path / "metrics" / "rank-x.jsonl").write_text(line("loss", 0, 99.0))  # not a rank file
    run = read_run(tmp_path)
    assert [(s.name, s.rank, len(s)) for s in run.series] == [
        ("loss", 0, 3),
        ("accuracy", 0, 3),
        ("loss", 2, 2),
        ("loss", 10, 1),
    ]
    assert run.rows()[-1] == Row("loss", 0, 10.0, 10, 1764783600.0)


def test_invalid_utf8_in_a_cut_line_is_damage_not_a_crash(tmp_path):
    path = tmp_path / "metrics" / "rank-0.jsonl"
    path.parent.mkdir()
    path.write_bytes(line("loss", 0, 0.5).encode() + b'{"name":"\xe6\x90' + b"\n" + line("loss", 1, 0.4).encode())
    run = read_run(tmp_path)
    assert points(run, "loss") == [(0, 0.5), (1, 0.4)] and sum(run.damaged.values()) == 1


# -- summaries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, goal",
    [
        ("loss", ("min", "from the name")),
        ("val_loss", ("min", "from the name")),
        ("train/epoch_loss", ("min", "from the name")),
        ("mean_absolute_error", ("min", "from the name")),
        ("mse", ("min", "from the name")),
        ("accuracy", ("max", "from the name")),
        ("val_sparse_categorical_accuracy", ("max", "from the name")),
        ("validation/epoch_auc", ("max", "from the name")),
        ("f1_score", ("max", "from the name")),
        ("Precision", ("max", "from the name")),
        ("images_per_second", ("max", "from the name")),
        ("samples/s", ("max", "from the name")),
        ("tokens_loss", ("min", "from the name")),  # a loss first
        ("learning_rate", ("min", "default")),
        ("glossary", ("min", "default")),  # a word, not a substring
    ],
)
def test_the_goal_is_guessed_from_the_words_of_the_name(name, goal):
    assert guess_goal(name) == goal


def test_a_given_goal_wins_and_bad_goals_name_the_item(tmp_path):
    write_rank(tmp_path, 0, curve("lr", range(4), lambda s: [3.0, 1.0, 4.0, 2.0][s]))
    (series,) = read_run(tmp_path).series
    low, high = summarise(series), summarise(series, {"lr": "max"})
    assert (low.goal, low.goal_source, low.best, low.best_step) == ("min", "default", 1.0, 1)
    assert (high.goal, high.goal_source, high.best, high.best_step) == ("max", "given", 4.0, 2)
    assert (high.last, high.last_step, high.count) == (2.0, 3, 4)
    assert parse_goals(["a/b=c=max", "loss=min"]) == {"a/b=c": "max", "loss": "min"}
    for bad in ("loss", "loss=up", "=min"):
        with pytest.raises(ValueError, match=f"--goal='{bad}': must be NAME=min or NAME=max"):
            parse_goals([bad])


# -- the status line ------------------------------------------------------------------------


def test_the_status_line_shows_the_names_logged_at_the_latest_step(tmp_path):
    assert latest(tmp_path) is None and latest_text(tmp_path) is None
    text = "".join(line("loss", s, 1 / (s + 1)) + line("accuracy", s, s / 10) for s in range(12))
    text += line("val_loss", 5, 0.7) + line("loss", 12, 0.21) + line("accuracy", 12, 0.93) + '{"name":"loss","st'
    write_rank(tmp_path, 0, text)
    assert latest(tmp_path) == (12, {"loss": 0.21, "accuracy": 0.93})
    assert latest_text(tmp_path) == "step 12  loss=0.21  accuracy=0.93"


def test_the_status_line_reads_only_the_tail_of_a_big_file(tmp_path):
    write_rank(tmp_path, 0, curve("loss", range(20000)) + line("loss", 20000, 0.5) + line("acc", 20000, 0.75))
    assert latest_text(tmp_path) == "step 20000  loss=0.5  acc=0.75"


def test_after_a_requeue_the_latest_line_sets_the_step(tmp_path):
    write_rank(tmp_path, 0, curve("loss", range(10)) + line("loss", 4, 0.9))  # the new attempt resumed at 4
    assert latest_text(tmp_path) == "step 4  loss=0.9"
