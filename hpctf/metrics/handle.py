"""``job.metrics()``'s answer (:class:`hpctf.runfolder.RunFolder`): rows, or a DataFrame."""

from __future__ import annotations

import importlib.util

from ..errors import HpctfError

COLUMNS = ("name", "step", "value", "rank", "time")


def rows_or_frame(run, as_frame: bool | None):
    """The points of ``run`` (a :class:`~hpctf.metrics.RunMetrics`) as rows or a DataFrame."""
    has_pandas = importlib.util.find_spec("pandas") is not None
    if as_frame and not has_pandas:
        raise HpctfError("metrics(as_frame=True) needs pandas, which is not installed: pip install pandas")
    if not (has_pandas if as_frame is None else as_frame):
        return run.rows()
    import pandas as pd

    columns: dict[str, list] = {key: [] for key in COLUMNS}
    for s in run.series:
        columns["name"] += [s.name] * len(s)
        columns["step"] += s.steps
        columns["value"] += s.values
        columns["rank"] += [s.rank] * len(s)
        columns["time"] += s.times
    frame = pd.DataFrame(columns, columns=list(COLUMNS))
    frame["step"] = frame["step"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    frame["rank"] = frame["rank"].astype("Int64")  # None for TensorBoard's: a nullable int
    frame["time"] = frame["time"].astype("float64")
    return frame
