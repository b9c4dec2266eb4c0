"""Hyperparameter sweeps (issue 18, in progress): the parameter space so far.

- :mod:`.space`: ``--param 'lr=loguniform(1e-4,1e-1)'`` and TOML ``[params]`` tables
  parsed and checked (HyperDrive's distribution names), grids counted.
"""
