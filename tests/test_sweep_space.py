"""A sweep's parameter space (issue 18): --param texts and TOML tables, parsed and checked.

Every refusal names the parameter, the value and what is allowed; nothing in a --param
text is ever run (the arguments are literals).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpctf.errors import SpecError
from hpctf.sweep.space import ARITY, Param, grid_size, parse_param, parse_space

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@pytest.mark.parametrize(
    "text, kind, args, flag",
    [
        ("lr=loguniform(1e-4,1e-1)", "loguniform", (1e-4, 0.1), "--lr"),
        ("batch=choice(32, 64, 128)", "choice", (32, 64, 128), "--batch"),
        ("--batch-size=choice(32,64)", "choice", (32, 64), "--batch-size"),
        ("-o=choice('adam', 'sgd')", "choice", ("adam", "sgd"), "-o"),
        ("dropout = uniform(0.1, 0.5)", "uniform", (0.1, 0.5), "--dropout"),
        ("units=quniform(32, 256, 32)", "quniform", (32, 256, 32), "--units"),
        ("layers=randint(4)", "randint", (4,), "--layers"),
        ("seed=randint(10, 20)", "randint", (10, 20), "--seed"),
        ("init=normal(0, 0.02)", "normal", (0, 0.02), "--init"),
    ],
)
def test_each_distribution_parses(text, kind, args, flag):
    param = parse_param(text)
    assert (param.kind, param.args, param.flag) == (kind, args, flag)
    assert parse_param(str(param)) == param  # str() writes it back as a --param text


@pytest.mark.parametrize(
    "text, words",
    [
        ("lr", "param='lr': must be NAME=DISTRIBUTION(ARGS)"),
        ("lr=gaussian(0,1)", "'gaussian' is not a distribution; known: choice, uniform, loguniform"),
        ("lr=uniform(0.5, 0.1)", "param 'lr'='uniform(0.5, 0.1)': low must be below high: 0.5 >= 0.1"),
        ("lr=uniform(0.1, 0.1)", "low must be below high: 0.1 >= 0.1"),
        ("lr=loguniform(0, 1)", "loguniform needs low > 0"),
        ("lr=uniform(0.1)", "uniform takes 2 argument(s), not 1"),
        ("lr=randint(1, 2, 3)", "randint takes 1 or 2 argument(s), not 3"),
        ("n=randint(5, 5)", "the range is empty: 5 >= 5"),
        ("n=randint(2.5)", "randint takes integers"),
        ("s=normal(0, 0)", "sigma must be > 0"),
        ("u=quniform(0, 10, 0)", "q must be > 0"),
        ("u=uniform(0, inf)", "the arguments must be numbers or quoted strings"),
        ("u=uniform(0, float('inf'))", "the arguments must be numbers or quoted strings"),
        ("c=choice()", "choice takes at least 1 argument(s), not 0"),
        ("c=choice(1, 1)", "choice options must differ"),
        ("c=choice(True, False)", "choice options must be numbers or strings"),
        ("c=choice(__import__('os').system('touch /tmp/pwned'))", "the arguments must be numbers or quoted strings"),
        ("c=choice([1, 2])", "choice options must be numbers or strings"),
        ("2lr=uniform(0, 1)", "the name must be an option of the entry script"),
        ("l r=uniform(0, 1)", "the name must be an option of the entry script"),
        ("=uniform(0, 1)", "param='': the name must be an option"),
        ("lr=uniform 0 1", "must be a distribution such as 'uniform(0.1, 0.9)'"),
    ],
)
def test_bad_params_name_the_parameter_and_what_is_allowed(text, words):
    with pytest.raises(SpecError) as caught:
        parse_param(text)
    assert words in str(caught.value), str(caught.value)


def test_a_space_from_options_and_a_toml_table():
    table = tomllib.loads('[params]\nlr = "loguniform(1e-4, 1e-1)"\nbatch = [32, 64]\n')["params"]
    space = parse_space(["dropout=uniform(0, 0.5)"], table)
    assert [(p.name, p.kind) for p in space] == [("dropout", "uniform"), ("lr", "loguniform"), ("batch", "choice")]
    with pytest.raises(SpecError, match="params.batch=.*choice options must differ"):
        parse_space([], {"batch": [32, 32]})
    with pytest.raises(SpecError, match="param '--lr'=.*is given twice"):
        parse_space(["lr=uniform(0, 1)", "--lr=uniform(0, 2)"])
    with pytest.raises(SpecError, match="a sweep needs at least one parameter"):
        parse_space([])


def test_grids_are_counted_and_refused_where_they_cannot_be():
    space = parse_space(["a=choice(1, 2)", "b=choice('x', 'y', 'z')"])
    assert grid_size(space) == 6 and grid_size(space, trials=6) == 6
    with pytest.raises(SpecError, match="trials=5: the grid has 6 combinations: give --trials 6 or more"):
        grid_size(space, trials=5)
    assert parse_param("u=quniform(0.1, 0.5, 0.1)").grid == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert parse_param("n=randint(3, 6)").grid == (3, 4, 5)
    with pytest.raises(SpecError, match="param 'lr'=.*a grid takes choice, randint or quniform"):
        grid_size(parse_space(["lr=uniform(0, 1)"]))
    with pytest.raises(SpecError, match="more than 100,000 combinations"):
        grid_size(parse_space(["a=randint(1000)", "b=randint(1000)"]))


@given(st.sampled_from(sorted(ARITY)), st.lists(st.one_of(st.integers(-5, 5), st.floats(-10, 10)), max_size=4))
def test_any_arguments_give_a_param_or_a_spec_error(kind, args):
    text = f"x={kind}({', '.join(map(repr, args))})"
    try:
        param = parse_param(text)
    except SpecError as err:
        assert err.fields == ["param 'x'"]
    else:
        assert isinstance(param, Param) and param.kind == kind and param.args == tuple(args)
