"""Hyperparameter sweeps (issue 18): one Slurm job array, one element a trial.

- :mod:`.space`: ``--param 'lr=loguniform(1e-4,1e-1)'`` and TOML ``[params]`` tables
  parsed and checked (HyperDrive's distribution names), grids counted;
- :mod:`.config`: the sweep's settings (metric, goal, sampler, budget, early stopping,
  storage), checked together and kept in ``sweep.json``;
- :mod:`.study`: the Optuna study (a journal file in the sweep folder, or a site's
  database), one trial per element, asked once and kept across requeues, told complete,
  failed or pruned. Needs Optuna (the ``sweep`` extra);
- :mod:`.script`: what the job script needs to be an array of trials;
- :mod:`.trial`: ``python -m hpctf.sweep.trial ask|tell|watch``, what an element runs
  before, after and beside its training; :mod:`.prune`, the watcher's early stopping;
- :mod:`.report`: the trials as rows, best first; :mod:`.plots`: the two PNGs;
- :mod:`.handle`: ``hpctf.Sweep`` and the handle of a submitted sweep, ``SweepRun``.
"""
