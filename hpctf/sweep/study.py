"""A sweep's study: Optuna over a journal file in the sweep's folder, one trial per job
array element.

The study is ``<sweep folder>/study.journal`` (Optuna's journal storage: an append-only
file, locked by a file made with ``open(O_CREAT | O_EXCL)``, which holds on NFSv3 and
later), so every element of the array and the login node see one study, no database.

An element asks for its trial once (:meth:`Study.ask`) and keeps the answer in
``trials/<index>.json``: a requeued element gets the same trial and parameters back.
Each asker builds the study with its own sampler (a sampler is not stored):

- ``grid``: element *i* runs the *i*-th combination (every parameter fixed by Optuna's
  ``PartialFixedSampler``): each combination exactly once, whatever order elements start in;
- ``random``: ``RandomSampler`` seeded with the sweep's seed + *i*: the same draws again;
- ``tpe``: ``TPESampler`` seeded likewise, learning from every trial already told.

``normal(mu, sigma)`` has no Optuna distribution: the study holds its quantile ``u``
(uniform in (0, 1)) and the script gets ``mu + sigma * Phi^-1(u)``, normally distributed
when ``u`` is uniform, and searchable by TPE like any other.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from pathlib import Path
from statistics import NormalDist
from typing import Any

from ..errors import HpctfError
from .space import Param, grid_size

STUDY_FILE = "study.journal"
TRIALS_DIR = "trials"
SAMPLERS = ("grid", "random", "tpe")
GOALS = {"min": "minimize", "max": "maximize"}
_EDGE = 1e-6  # normal's quantile stays inside (0, 1)


def distribution(param: Param):
    """The Optuna distribution the study holds for ``param``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind, args = param.kind, param.args
    if kind == "choice":
        return CategoricalDistribution(args)
    if kind == "randint":
        low, upper = args if len(args) == 2 else (0, args[0])
        return IntDistribution(low, upper - 1)
    if kind == "quniform" and all(isinstance(a, int) for a in args):
        return IntDistribution(args[0], args[1], step=args[2])
    if kind == "quniform":
        return FloatDistribution(args[0], args[1], step=args[2])
    if kind == "normal":
        return FloatDistribution(_EDGE, 1 - _EDGE)
    return FloatDistribution(args[0], args[1], log=kind == "loguniform")


def script_value(param: Param, held: Any) -> Any:
    """The value the entry script gets for what the study holds."""
    if param.kind == "normal":
        mu, sigma = param.args
        return NormalDist(mu, sigma).inv_cdf(held)
    return held


class Study:
    """One sweep's study: its folder, space, goal and sampler."""

    def __init__(self, folder: Path, space: list[Param], goal: str = "min", sampler: str = "random", seed: int = 0):
        if goal not in GOALS:
            raise HpctfError(f"goal={goal!r}: must be 'min' or 'max'")
        if sampler not in SAMPLERS:
            raise HpctfError(f"sampler={sampler!r}: must be one of {', '.join(SAMPLERS)}")
        self.folder, self.space, self.goal, self.sampler, self.seed = Path(folder), space, goal, sampler, seed
        if sampler == "grid":
            grid_size(space)  # refuses a parameter with no finite grid
        self.grid = list(itertools.product(*(p.grid for p in space))) if sampler == "grid" else None

    def optuna_study(self, index: int = 0, pruner=None):
        """The Optuna study, made if new, with this asker's sampler (element ``index``)."""
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = str(self.folder / STUDY_FILE)
        storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        return optuna.create_study(
            study_name="sweep",
            storage=storage,
            direction=GOALS[self.goal],
            sampler=self._sampler(index),
            pruner=pruner,
            load_if_exists=True,
        )

    def _sampler(self, index: int):
        import optuna

        seed = self.seed + index
        if self.sampler == "grid":
            if index >= len(self.grid):
                raise HpctfError(f"trial {index}: the grid has only {len(self.grid)} combinations")
            fixed = {p.name: value for p, value in zip(self.space, self.grid[index])}
            with warnings.catch_warnings():  # "experimental" since Optuna 2.4, unchanged since
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.PartialFixedSampler(fixed, optuna.samplers.RandomSampler(seed=seed))
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def ask(self, index: int) -> dict[str, Any]:
        """Element ``index``'s trial: ``{"number": N, "params": {name: value}}``, the same
        on every attempt of the element."""
        kept = self.folder / TRIALS_DIR / f"{index}.json"
        if kept.exists():
            return json.loads(kept.read_text())
        study = self.optuna_study(index)
        trial = study.ask({p.name: distribution(p) for p in self.space})
        answer = {
            "number": trial.number,
            "params": {p.name: script_value(p, trial.params[p.name]) for p in self.space},
        }
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(answer))
        os.replace(tmp, kept)  # whole, or not there: an element killed here asks again
        return answer

    def tell(self, index: int, value: float | None = None, state: str = "complete") -> None:
        """How element ``index``'s trial ended: ``complete`` with ``value``, ``fail`` or ``pruned``."""
        import optuna

        states = {"complete": optuna.trial.TrialState.COMPLETE, "fail": optuna.trial.TrialState.FAIL}
        states["pruned"] = optuna.trial.TrialState.PRUNED
        if state not in states:
            raise HpctfError(f"state={state!r}: must be one of {', '.join(states)}")
        number = self.ask(index)["number"]
        self.optuna_study(index).tell(number, value if state == "complete" else None, state=states[state])

    def optuna_trial(self, index: int, pruner=None):
        """Element ``index``'s trial as an Optuna ``Trial``, to ``report`` intermediate values
        to and ask ``should_prune`` (with ``pruner``: not stored by Optuna either)."""
        import optuna

        number = self.ask(index)["number"]
        study = self.optuna_study(index, pruner)
        # Trial wants the storage's id, which a database numbers across studies: ask it.
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        return optuna.trial.Trial(study, trial_id)

    def trials(self) -> list:
        """Every trial of the study (Optuna's FrozenTrial), by number."""
        return sorted(self.optuna_study().get_trials(deepcopy=False), key=lambda t: t.number)
