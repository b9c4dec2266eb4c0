"""What runs on the compute nodes, in the job's own Python: standard library only.

The login-node side of hpctf (the estimator, rendering, submission, tracking) needs
Jinja, click, submitit and rich; nothing here does, nor imports a module that does.
The only third-party module is ``hostlist`` (one small file), which containers get next
to hpctf under ``/opt/hpctf-runtime``.

- :mod:`.bootstrap`: ``python -m hpctf.runtime``, the start of every task;
- :mod:`.taskenv`, :mod:`.nodelist`, :mod:`.roles`, :mod:`.layout`, :mod:`.gpus`,
  :mod:`.ports`, :mod:`.keras_policy`: what a task derives from its environment;
- :mod:`.process`, :mod:`.logs`, :mod:`.supervise`, :mod:`.args`: starting commands,
  their exit status, signal forwarding, per-rank logs, markers, argument parsing;
- :mod:`.checkpoint`: the checkpoint-request API of training scripts (``hpctf.runtime``);
- :mod:`.metrics`: ``hpctf.log_metric``, metrics kept with the run (``hpctf.keras`` is
  its Keras callback, outside this package: it needs Keras);
- :mod:`.local_srun`: the stand-in for ``srun`` of the local target;
- :mod:`.envs`: ``python -m hpctf.envs ensure``, cached pip/conda environments;
- :mod:`.probe`: the entry script of ``hpctf doctor``'s job.

Nothing is imported here: ``python -m hpctf.runtime`` pays only for what it uses.
"""
