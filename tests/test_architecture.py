"""The package's architecture where the import contracts cannot see it.

The contracts in pyproject.toml (`lint-imports`, run by .ci/run) prove which module may import
which. They cannot see what a module does with what it imports: these tests read the source of
src/kronos and check that the front ends use the public forecasting core as it is published,
rather than reaching into it or redoing its arithmetic.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "kronos"
CORE = "forecasting"
# the front ends that forecast through the core: the CLI, the service, evaluation, Ray
FRONT_ENDS = ("commands", "serve", "evaluation", "ray", "mcpserver")
# the model's precision is the core's business; Ray only carries the core's arrays, so it is not listed
PRECISION_FREE = ("commands", "serve", "evaluation", "mcpserver")


def modules(*packages: str) -> list[Path]:
    """The Python files of the named subpackages of src/kronos (all of it when none are named)."""
    roots = [SRC / name for name in packages] or [SRC]
    return sorted(path for root in roots for path in root.rglob("*.py"))


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC.parent)}:{line}"


def private_members(paths: list[Path]) -> set[str]:
    """The private names (one leading underscore) that the classes of `paths` define: methods,
    class attributes and attributes assigned to `self`."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(inner.name)
                elif isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                    if isinstance(inner.value, ast.Name) and inner.value.id == "self":
                        names.add(inner.attr)
                elif isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
                    names.add(inner.target.id)
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def private_accesses(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, `expr._name`) for each use of one of the private `names` on anything other than
    `self` or `cls`, by attribute or by getattr/setattr with a literal name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in names:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append((node.lineno, f"{ast.unparse(owner)}.{node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in names
        ):
            found.append(
                (node.lineno, f"{node.func.id}({ast.unparse(node.args[0])}, {node.args[1].value!r})")
            )
    return sorted(found)


def test_no_module_outside_the_core_reaches_into_its_private_members():
    names = private_members(modules(CORE))
    assert "_sample" in names or len(names) > 5, "the core's private members were not found: is CORE right?"
    outside = [path for path in modules() if CORE not in path.relative_to(SRC).parts]
    reaches = [
        f"{where(path, line)} {text}"
        for path in outside
        for line, text in private_accesses(path.read_text(encoding="utf-8"), names)
    ]
    assert not reaches, (
        "these modules use private members of kronos.forecasting; make what they need public there: "
        + "; ".join(reaches)
    )


def test_the_private_member_check_finds_a_reach_into_the_predictor():
    names = private_members(modules(CORE))
    name = sorted(names)[0]
    source = (
        f"def paths(predictor):\n    return predictor.{name}(1)\n\n"
        f"class Own:\n    def f(self):\n        return self.{name}\n"
    )
    assert private_accesses(source, names) == [(2, f"predictor.{name}")]
    assert private_accesses(f"getattr(p, {name!r})", names) == [(1, f"getattr(p, {name!r})")]


# --- comments that describe arithmetic redone elsewhere --------------------------------------------

# "mimics", or "as <a function of the core> computes/compares/... it": a front end redoing the
# core's arithmetic, where it should call the core
MIMICS = re.compile(
    r"\bmimic\w*|\b(copies|copied|copy of|replicat\w*|redoes|reimplement\w*)\b[^.]{0,40}\barithmetic"
    r"|\bas (`?(KronosPredictor\.)?_?predict\w*`?|the predictor|`?_\w+`?) "
    r"(computes|measures|compares|rounds|casts|normali[sz]es|sees|does)\b",
    re.IGNORECASE,
)


def comments(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and every line of every docstring."""
    found = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                text = first.value.value
                if isinstance(text, str):
                    found += [(first.lineno + k, line) for k, line in enumerate(text.splitlines())]
    return found


def mimicking(source: str) -> list[tuple[int, str]]:
    return [(line, text.strip()) for line, text in comments(source) if MIMICS.search(text)]


def test_no_comment_says_it_mimics_another_modules_arithmetic():
    said = [
        f"{where(path, line)} {text}"
        for path in modules()
        for line, text in mimicking(path.read_text("utf-8"))
    ]
    assert not said, "call the core instead of redoing its arithmetic: " + "; ".join(said)


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("x = 1  # mimics predictor._price_paths\n", True),
        ('def f():\n    """Rounds as predict_quantiles does it."""\n', True),
        ("v = 2  # of each forecast's history, as predict_paths computes it\n", True),
        ("y = 3  # copies the predictor's float32 arithmetic\n", True),
        ("z = 4  # infers the spacing as `kronos forecast` does\n", False),
        ('"""Weights are checked before they are copied in."""\n', False),
    ],
)
def test_the_comment_check_tells_mimicking_from_describing(source, flagged):
    assert bool(mimicking(source)) is flagged


# --- precision ----------------------------------------------------------------------------------------


def float32_uses(source: str) -> list[int]:
    """Lines that name a float32 dtype in code (`np.float32`, `torch.float32`, ...)."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr == "float32"
    )


def test_front_ends_leave_the_models_float32_arithmetic_to_the_core():
    uses = [
        where(path, line)
        for path in modules(*PRECISION_FREE)
        for line in float32_uses(path.read_text(encoding="utf-8"))
    ]
    assert not uses, (
        "a front end casting to float32 is redoing what the core does to the numbers it is given; "
        "pass the series to the core and use its answer: " + ", ".join(uses)
    )
    assert float32_uses("import numpy as np\nlast = float(np.float32(close))\n") == [2]


def test_the_front_ends_are_the_packages_the_contracts_name():
    """The lists above and the import contracts in pyproject.toml name the same front ends."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    config = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}
    assert {f"kronos.{name}" for name in FRONT_ENDS} <= set(contracts["public-core"]["source_modules"])
    assert set(contracts["no-networks"]["source_modules"]) == {f"kronos.{name}" for name in FRONT_ENDS}
    assert all((SRC / name).is_dir() for name in FRONT_ENDS)
