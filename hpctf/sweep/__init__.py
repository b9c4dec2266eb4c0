"""Hyperparameter sweeps (issue 18, in progress): the parameter space and the study.

- :mod:`.space`: ``--param 'lr=loguniform(1e-4,1e-1)'`` and TOML ``[params]`` tables
  parsed and checked (HyperDrive's distribution names), grids counted;
- :mod:`.study`: the Optuna study in the sweep's folder (journal file storage), one trial
  per job array element, asked once and kept across requeues, told complete, failed or
  pruned. Needs Optuna (the ``sweep`` extra);
- :mod:`.trial`: ``python -m hpctf.sweep.trial ask|tell``, what an array element runs
  before and after its training (arguments out, the metric's last value in).

Not wired to a command or a job array yet.
"""
