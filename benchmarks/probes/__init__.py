"""Small programs the benchmarks run in other processes (inside a job, or a fresh process)."""
