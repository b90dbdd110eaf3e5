"""New data for a compiled problem: the arrays of ``SolveState.inputs`` an update replaces.

``crux.condition({y: y_new})`` and ``crux.solve_batch({y: ys})`` name what they replace by
the placeholder that reads it:

==============================  ==========================================================
key                             replaces
==============================  ==========================================================
a data placeholder              ``inputs[point set]["data"][name]`` (``dom.variable(name,
                                array)``)
a ``jno.noise`` leaf            its drawn noise ``inputs[point set]["noise"][leaf]`` (the
                                leaf must be used on exactly one point set)
a point set, or a coordinate    the point coordinates ``inputs[point set]["coords"]``
variable of one
==============================  ==========================================================

The new array has the shape of the old one (a batched update: a leading dataset axis in
front) and a dtype that casts to it within its kind (``float64`` data for a ``float32``
problem is fine, floats for integer data are not), so the compiled step reads it unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..lower.evaluate import noise_key, ps_key
from ..trace.node import Data, Noise, Variable, _describe
from ..trace.pointset import PointSet


class Slot(NamedTuple):
    """One replaceable array of the inputs: ``inputs[pointset][field][name]`` (``name`` is
    ``None`` for the coordinates)."""

    pointset: str
    field: str
    name: str | None
    label: str


def slot_of(program, target, where: str) -> Slot:
    """The array of the inputs that ``target`` (a key of an update) names."""
    if isinstance(target, Data):
        ps = target.pointset
        return Slot(ps_key(ps), "data", target.data_name, f"data {target.data_name!r}")
    if isinstance(target, Noise):
        nk = noise_key(target)
        on = [pk for pk, noises in program.plan.noise_on.items() if nk in noises]
        if len(on) != 1:
            raise ValueError(
                f"{where}: the noise leaf {_describe(target)} is used on {len(on)} point sets of "
                "the constraints; only a noise used on exactly one point set can be replaced "
                "(give each point set its own jno.noise leaf)."
            )
        return Slot(on[0], "noise", nk, f"noise {_describe(target)}")
    if isinstance(target, Variable):
        target = target.pointset
    if isinstance(target, PointSet):
        return Slot(ps_key(target), "coords", None, f"the coordinates of {target.label}")
    raise TypeError(
        f"{where}: cannot replace {type(target).__name__} {target!r}; the keys are data "
        "placeholders (dom.variable(name, array)), jno.noise leaves, or point sets / "
        "coordinate variables (new points)."
    )


def current(inputs: dict, slot: Slot):
    rows = inputs[slot.pointset]
    return rows["coords"] if slot.field == "coords" else rows[slot.field][slot.name]


def resolve(program, inputs: dict, updates, where: str, batched: bool = False):
    """``({slot: array}, num_datasets)``: the updates checked against the arrays they replace.

    Args:
        program: the crux's :class:`~jno.lower.program.Program`.
        inputs: the inputs the arrays replace (``SolveState.inputs``).
        updates: ``{placeholder or point set: array}``.
        where: the calling function, for messages.
        batched: every array has a leading dataset axis ``(D, *shape)``, the same ``D`` for
            all of them (``num_datasets`` is ``None`` otherwise).

    Raises:
        TypeError: ``updates`` is not a non-empty dict, or a key names nothing replaceable.
        ValueError: a key the constraints do not read, a shape or dtype that differs from the
            array it replaces, non-finite values, or unequal dataset counts.
    """
    if not isinstance(updates, dict) or not updates:
        raise TypeError(
            f"{where}: pass a non-empty dict {{placeholder: array}}, e.g. {{y: y_new}}, got "
            f"{type(updates).__name__}"
        )
    out, count = {}, None
    for target, array in updates.items():
        slot = slot_of(program, target, where)
        if slot.pointset not in inputs or (
            slot.field != "coords" and slot.name not in inputs[slot.pointset][slot.field]
        ):
            raise ValueError(
                f"{where}: {slot.label} is not read by the constraints of this crux; "
                "condition on the placeholders the constraints use."
            )
        if slot in out:
            raise ValueError(f"{where}: {slot.label} is given twice")
        old = current(inputs, slot)
        new = np.asarray(array)
        if batched:
            count = _dataset_count(new, old, slot, count, where)
        new = _checked(new, old, slot, batched, where)
        # cast on the host: a device-side cast would compile a conversion for the new shape
        out[slot] = jnp.asarray(np.asarray(new, dtype=old.dtype))
    return out, count


def _dataset_count(new: np.ndarray, old, slot: Slot, count: int | None, where: str) -> int:
    """The leading dataset axis of a batched update, equal for every update."""
    if new.ndim < 1:
        raise ValueError(
            f"{where}: {slot.label} needs a leading dataset axis: shape (D, "
            f"{', '.join(map(str, old.shape))}), got a scalar"
        )
    if count is not None and new.shape[0] != count:
        raise ValueError(
            f"{where}: {slot.label} holds {new.shape[0]} datasets, another update "
            f"holds {count}; every array needs the same leading dataset axis."
        )
    return int(new.shape[0])


def _checked(new: np.ndarray, old, slot: Slot, batched: bool, where: str) -> np.ndarray:
    """``new`` in the shape of ``old`` (after a dataset axis), of a castable dtype, finite."""
    lead = new.shape[:1] if batched else ()
    shape = new.shape[len(lead) :]
    if shape != old.shape and shape + (1,) == old.shape:
        new = new.reshape(lead + old.shape)  # (N,) data stored as (N, 1)
    if new.shape[len(lead) :] != old.shape:
        want = ("(D, " if batched else "(") + ", ".join(map(str, old.shape)) + ")"
        raise ValueError(
            f"{where}: {slot.label} has shape {tuple(old.shape)}; the new array has shape "
            f"{tuple(new.shape)}, expected {want}. The compiled program reads arrays of "
            "the same shape; a new number of points needs a new crux."
        )
    if not np.can_cast(new.dtype, old.dtype, casting="same_kind"):
        raise ValueError(
            f"{where}: {slot.label} has dtype {old.dtype}; the new array's {new.dtype} "
            "does not cast to it. Pass an array of the same kind."
        )
    if np.issubdtype(new.dtype, np.inexact) and not np.all(np.isfinite(new)):
        raise ValueError(
            f"{where}: {slot.label}: the new array holds NaN or infinite values; a "
            "likelihood of non-finite data is NaN everywhere."
        )
    return new


def replace(inputs: dict, resolved: dict) -> dict:
    """``inputs`` with the resolved arrays in place of the ones they replace (a new pytree;
    ``inputs`` is not changed)."""
    out = {
        pk: {**rows, "data": dict(rows["data"]), "noise": dict(rows["noise"])}
        for pk, rows in inputs.items()
    }
    for slot, array in resolved.items():
        if slot.field == "coords":
            out[slot.pointset]["coords"] = array
        else:
            out[slot.pointset][slot.field][slot.name] = array
    return out


def check_condition_args(where: str, warm_start, dataset, streams_change: bool) -> None:
    """The keywords of ``crux.condition``: ``warm_start`` a bool, ``dataset`` an index or
    ``None``; a warm start cannot change the key streams of a started solve
    (``streams_change``)."""
    if not isinstance(warm_start, bool):
        raise TypeError(f"{where}: warm_start must be True or False, got {warm_start!r}")
    if dataset is not None and (
        not isinstance(dataset, int) or isinstance(dataset, bool) or dataset < 0
    ):
        raise ValueError(
            f"{where}: dataset must be a non-negative int (the index of a solve_batch "
            f"dataset whose keys to use) or None, got {dataset!r}"
        )
    if warm_start and streams_change:
        raise ValueError(
            f"{where}(..., dataset={dataset!r}, warm_start=True): a change of the key "
            "streams restarts the solve; pass warm_start=False."
        )
