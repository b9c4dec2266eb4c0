"""results.json (everything, with every sample) and results.md (the tables)."""

from __future__ import annotations

import json
from pathlib import Path

MACHINE_ROWS = [
    ("date", "Date"),
    ("cpu", "CPU"),
    ("cores", "Cores"),
    ("debian", "Debian"),
    ("kernel", "Kernel"),
    ("slurm", "Slurm"),
    ("python", "Python"),
    ("hpctf", "hpctf"),
    ("load_average", "Load average at start (1, 5, 15 min)"),
    ("load_average_end", "Load average at end"),
]


HOW_TO_READ = (
    "How to read the tables: N samples, each from its own process unless the figure says *in-process*. "
    "IQR is the interquartile range, min–max the full spread. The plain alternative was measured "
    "side by side, in the same rounds, and *Ratio* is the median ÷ the alternative's median (in "
    "brackets: the spread of the per-round ratios). In the growth table the ratio is the median ÷ "
    "the median at the smallest size. Benchmarks are not pass/fail tests: a missed goal is a finding."
)


def num(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value):
        return f"{value:,.0f}"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 0.1 else 3
    return f"{value:,.{digits}f}"


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def figure_row(f: dict) -> str:
    unit = f["unit"]
    base = f["baseline_stats"]
    alternative = f"{f['baseline']}: {num(base['median'])} {unit}" if base else (f["baseline"] or "—")
    ratio = num(f["ratio"])
    if f["ratio_stats"]:
        ratio += f" ({num(f['ratio_stats']['min'])}–{num(f['ratio_stats']['max'])})"
    met = {True: "yes", False: "**NO**", None: "—"}[f["met"]]
    return (
        "| "
        + " | ".join(
            cell(c)
            for c in [
                f"{f['what']} `{f['key']}`",
                f["n"],
                f"{num(f['median'])} {unit}",
                f"{num(f['q1'])}–{num(f['q3'])}",
                f"{num(f['min'])}–{num(f['max'])}",
                alternative,
                ratio,
                f["goal"] or "—",
                met,
            ]
        )
        + " |"
    )


def missed_line(f: dict) -> str:
    value = f"ratio {num(f['ratio'])}" if f["goal"].startswith("ratio") else f"median {num(f['median'])} {f['unit']}"
    return f"- **Missed:** {f['what']} (`{f['key']}`): {value}, goal {f['goal']}."


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = ["# hpctf benchmarks", ""]
    quick = " (**quick mode: tiny sizes, few repeats; not for quoting**)" if results["quick"] else ""
    lines += [f"Command: `{results['command']}`{quick}", f"Run took {results['seconds']:.0f} s."]
    later = [g for g in results["groups"] if g.get("run")]
    if later:
        lines.append(
            "Merged in later (`--merge`), each with its own run under its heading: "
            + ", ".join(f"{g['number']}. `{g['name']}`" for g in later)
            + "."
        )
    lines += ["", "| Machine | |", "|---|---|"]
    for key, label in MACHINE_ROWS:
        value = ", ".join(f"{x:.2f}" for x in m[key]) if key.startswith("load_average") else m[key]
        lines.append(f"| {label} | {cell(value)} |")
    lines += ["", HOW_TO_READ, ""]

    goals = [f for g in results["groups"] for f in g["figures"] if f["goal"]]
    missed = [f for f in goals if f["met"] is False]
    lines += ["## Goals", ""]
    lines += [f"{len(goals) - len(missed)} of {len(goals)} goals met." if goals else "No goal was measured.", ""]
    lines += [missed_line(f) for f in missed] + ([""] if missed else [])
    failed = [g for g in results["groups"] if g["status"] != "ok"]
    lines += [f"- **Not measured:** {g['number']}. {g['title']} ({g['status']}): {g['error']}" for g in failed] + (
        [""] if failed else []
    )

    for g in results["groups"]:
        lines += [f"## {g['number']}. {g['title']} (`{g['name']}`)", ""]
        if g.get("run"):
            r = g["run"]
            load = ", ".join(f"{x:.2f}" for x in r["load_average"])
            load_end = ", ".join(f"{x:.2f}" for x in r["load_average_end"])
            lines += [
                f"*Measured in a separate run:* `{r['command']}`, {r['date']}, hpctf {cell(r['hpctf'])}; "
                f"took {r['seconds']:.0f} s; load average {load} at start, {load_end} at end.",
                "",
            ]
        if g["status"] != "ok":
            lines += [f"**{g['status']}:** {cell(g['error'])}", ""]
            continue
        lines += [
            "| Figure | N | Median | IQR | Min–max | Plain alternative (median) | Ratio | Goal | Met |",
            "|---|---:|---:|---:|---:|---|---:|---|---|",
        ]
        lines += [figure_row(f) for f in g["figures"]]
        notes = [f"- `{f['key']}`: {f['note']}" for f in g["figures"] if f["note"]]
        lines += ([""] + notes if notes else []) + [""]
    return "\n".join(lines).rstrip() + "\n"


def write(results: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
