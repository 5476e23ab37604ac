"""The learned department router: which department owns a mention no routing rule claims.

A multinomial linear model over the hashed n-grams of bot/intake/features.py, trained by
bot/intake/router_training.py and shipped as playbooks/default/models/router.npz. Running it
needs no scikit-learn: the weights are read from the .npz (a zip of .npy arrays) into one
`array` column per department, and a mention's scores are a few numpy calls over its few
hundred features (numpy views of those columns, no copy). Next: bot/intake/intake.py asks it
when the rules of bot/intake/routing.py leave a mention to the default department.
"""

from __future__ import annotations

import ast
import heapq
import io
import json
import math
import operator
import zipfile
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.intake.features import DIMENSION, Features, extract, readable

if TYPE_CHECKING:
    from bot.settings.config import Config

__all__ = [
    "DEFAULT_ROUTER_PATH",
    "FORMAT",
    "DepartmentRouter",
    "RouterChoice",
    "RouterError",
    "load_router",
    "read_npz",
    "router_path",
]

FORMAT = "otklik-router/1"
DEFAULT_ROUTER_PATH = Path(__file__).resolve().parents[2] / "playbooks/default/models/router.npz"
_SIGNALS = 3  # the strongest signals an explanation names


class RouterError(Exception):
    """The model file is missing, damaged or of another format."""


@dataclass(frozen=True, slots=True)
class RouterChoice:
    department: str
    confidence: float  # the model's probability of that department, 0..1
    signals: tuple[str, ...] = ()  # the n-grams that pushed hardest towards it, readable


@dataclass(frozen=True, slots=True, eq=False)
class DepartmentRouter:
    """Per department, a weight for each hashed feature and a bias; softmax over the scores.

    `weights[k]` is department k's column; departments a configuration lacks are dropped
    with `restricted_to`, so the model never names a department the bot cannot post to.
    """

    departments: tuple[str, ...]
    weights: tuple[array[float], ...]
    biases: tuple[float, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # The columns as numpy arrays sharing their memory: scores gather from them.
    _views: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.departments:
            raise RouterError("a router needs at least one department")
        if not len(self.departments) == len(self.weights) == len(self.biases):
            raise RouterError("departments, weight columns and biases differ in number")
        if any(len(column) != DIMENSION for column in self.weights):
            raise RouterError(f"weight columns must have {DIMENSION} entries")
        views = tuple(np.frombuffer(column, dtype=column.typecode) for column in self.weights)
        object.__setattr__(self, "_views", views)

    def restricted_to(self, departments: Iterable[str]) -> DepartmentRouter | None:
        """The same model choosing among these departments only; None when none is known."""
        wanted = set(departments)
        keep = [k for k, d in enumerate(self.departments) if d in wanted]
        if not keep:
            return None
        return DepartmentRouter(
            tuple(self.departments[k] for k in keep),
            tuple(self.weights[k] for k in keep),
            tuple(self.biases[k] for k in keep),
            self.metadata,
        )

    def scores(self, features: Features) -> list[float]:
        """Per department, bias + the sum of value × weight over the features, in their
        order. The very same floats as summing in Python: each product is one IEEE double
        multiplication, and add.accumulate adds them one after another (a plain sum or dot
        would add them pairwise, rounding otherwise)."""
        values, indexes = features.values, features.indexes
        if not indexes:
            return [bias + 0 for bias in self.biases]
        at = np.fromiter(indexes, dtype=np.intp, count=len(indexes))
        weights = np.vstack([view[at] for view in self._views])
        products = weights * np.fromiter(values, dtype=np.float64, count=len(values))
        totals: list[float] = np.add.accumulate(products, axis=1)[:, -1].tolist()
        return [bias + total for bias, total in zip(self.biases, totals, strict=True)]

    def choose(self, features: Features, *, explain: bool = True) -> RouterChoice:
        """The most likely department, its probability and (with `explain`) why."""
        scores = self.scores(features)
        ranked = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        best = ranked[0]
        top = scores[best]
        confidence = 1.0 / sum(math.exp(s - top) for s in scores)
        signals: tuple[str, ...] = ()
        if explain and len(ranked) > 1:
            signals = self._signals(features, best, ranked[1])
        return RouterChoice(self.departments[best], confidence, signals)

    def route_text(self, text: str) -> RouterChoice:
        return self.choose(extract(text))

    def _signals(self, features: Features, best: int, runner_up: int) -> tuple[str, ...]:
        # What set the winner apart from the runner-up: each feature's share of the margin.
        indexes = features.indexes
        pushes = list(
            map(
                operator.mul,
                features.values,
                map(
                    operator.sub,
                    map(self.weights[best].__getitem__, indexes),
                    map(self.weights[runner_up].__getitem__, indexes),
                ),
            )
        )
        strongest = heapq.nlargest(_SIGNALS, range(len(pushes)), key=pushes.__getitem__)
        names = features.names  # computed on each access: once, not once a signal
        return tuple(readable(names[i]) for i in strongest if pushes[i] > 0)

    @classmethod
    def load(cls, path: Path = DEFAULT_ROUTER_PATH) -> DepartmentRouter:
        arrays = read_npz(path)
        try:
            matrix = arrays["weights"]
            biases = arrays["biases"]
            departments = arrays["departments"]
            metadata = json.loads(bytes(arrays["metadata"][1]).decode())
        except (KeyError, ValueError, TypeError) as error:
            raise RouterError(f"{path}: not a router model ({error})") from error
        if metadata.get("format") != FORMAT:
            raise RouterError(f"{path}: format {metadata.get('format')!r}, expected {FORMAT}")
        names = tuple(str(d) for d in departments[1])
        shape, values = matrix
        if shape != (DIMENSION, len(names)):
            raise RouterError(
                f"{path}: weights of shape {shape}, expected {DIMENSION}×{len(names)}"
            )
        count = len(names)
        # Stored feature-major (DIMENSION × departments); run time reads one column at a time.
        columns = tuple(values[k::count] for k in range(count))
        return cls(names, columns, tuple(float(b) for b in biases[1]), metadata)


def router_path(config: Config) -> Path:
    """The playbook's own router model when it has one, else the shipped default."""
    own = config.playbooks.path / "models" / "router.npz"
    return own if own.is_file() else DEFAULT_ROUTER_PATH


def load_router(config: Config) -> DepartmentRouter | None:
    """The router choosing among the configured departments only; None when it knows none
    of them (then unclaimed mentions go to the default, as without a router)."""
    return DepartmentRouter.load(router_path(config)).restricted_to(config.department_ids)


# --- .npz without numpy ------------------------------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"
_ARRAY_CODES = {"<f4": "f", "<f8": "d", "<i4": "i", "<i8": "q", "|u1": "B"}


def read_npz(path: Path) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The arrays of an .npz as (shape, flat values): float and integer arrays as
    `array.array`, unicode arrays as a tuple of str. Only what the router writes is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {
                name.removesuffix(".npy"): _read_npy(archive.read(name))
                for name in archive.namelist()
            }
    except RouterError as error:
        raise RouterError(f"{path}: cannot read the model ({error})") from error
    except Exception as error:
        # A damaged file fails in zipfile, zlib or the header parser in many ways, none of
        # them a reason for a traceback.
        reason = f"{error}"[:120] or type(error).__name__
        raise RouterError(
            f"{path}: cannot read the model, damaged or not one ({reason})"
        ) from error


def _read_npy(data: bytes) -> tuple[tuple[int, ...], Any]:
    if not data.startswith(_NPY_MAGIC):
        raise RouterError("not an .npy array")
    stream = io.BytesIO(data)
    stream.seek(len(_NPY_MAGIC))
    major = stream.read(2)[0]
    size_bytes = 2 if major == 1 else 4
    header_len = int.from_bytes(stream.read(size_bytes), "little")
    header = ast.literal_eval(stream.read(header_len).decode("latin1"))
    if header["fortran_order"]:
        raise RouterError("Fortran-ordered arrays are not supported")
    shape = tuple(int(n) for n in header["shape"])
    descr: str = header["descr"]
    body = stream.read()
    if descr.startswith("<U"):
        width = int(descr[2:])
        text = body.decode("utf-32-le")
        items = tuple(text[i : i + width].rstrip("\x00") for i in range(0, len(text), width))
        return shape, items
    code = _ARRAY_CODES.get(descr)
    if code is None:
        raise RouterError(f"unsupported array type {descr}")
    values = array(code)
    values.frombytes(body)
    return shape, values
