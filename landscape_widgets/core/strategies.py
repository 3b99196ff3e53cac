"""The two ways of computing an objective at many points ``theta + c @ directions``.

``loop``
    one point at a time: the point is written into the objective's private model copy
    (whose moved parameters are views of one flat buffer, so this is one ``addmv``) and
    the batch goes through an ordinary forward. Lean in memory, and on a CPU already near
    the matrix-multiply peak for a full-batch forward.
``batched``
    many points per forward with ``torch.func.functional_call`` + ``torch.vmap``. This
    pays off on a GPU, where a small model's per-point forward is bound by kernel
    launches.

Both read each data batch once per call and evaluate it at all the call's points, so
streamed data (read again at every pass) costs one read per chunk of points. Both
return ``[values, points, batches]`` tensors: the loss, the accuracy (classification)
and the user metrics of each point on each batch.
"""

from __future__ import annotations

import contextlib
import sys

import torch

from .data import n_rows, split_batch
from .input_layer import CachedInputLayer
from .objective import Objective


#: Seconds the first ``torch.vmap`` forward of a process costs beyond its work (measured
#: 5-25 ms on the 2-core CI machine for the digits MLP and a small CNN); a later one in
#: the same process costs about nothing more.
VMAP_FIRST_CALL = 0.05
#: Seconds of importing sympy, which vmap's loss decomposition needs (``vmap_values``)
#: unless something imported it before (about 0.4 s on the CI machine).
SYMPY_IMPORT = 0.5
#: Which kinds of vmapped call (``vmap_values`` False / True) have run in this process.
_vmap_ran: set[bool] = set()


def batched_setup_seconds(vmap_values: bool) -> float:
    """Estimated one-off cost of the next :func:`evaluate_batched` call in this process
    (beyond its work): what an ``auto`` trial of the batched strategy must pay back."""
    seconds = 0.0 if _vmap_ran else VMAP_FIRST_CALL
    if vmap_values and True not in _vmap_ran and "sympy" not in sys.modules:
        seconds += SYMPY_IMPORT
    return seconds


def evaluate_loop(
    objective: Objective,
    theta: torch.Tensor,
    directions: torch.Tensor,
    coeffs: torch.Tensor,
    cached: CachedInputLayer | None = None,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """One forward per point and batch on the private copy.

    Per point only the loss, the predicted classes and the user metrics are computed;
    each batch's accuracies are compared with its labels once, for all points.

    Returns
    -------
    values : torch.Tensor
        ``[values, points, batches]``.
    sizes : tuple of int
        Samples per batch.
    """
    ob = objective
    direct = ob.flat.dtype == theta.dtype
    scratch = ob.flat if direct else torch.empty_like(theta)
    per_batch = []
    with ob.lock, torch.inference_mode(), (cached.standing_in() if cached else contextlib.nullcontext()):
        for b, batch in enumerate(ob.data):
            if cached:
                cached.use(b, batch)
            losses, preds, extras = [], [], []
            for c in coeffs.unbind(0):
                torch.addmv(theta, directions.T, c, out=scratch)
                if not direct:
                    ob.flat.copy_(scratch)
                if cached:
                    cached.at(c)
                loss, pred, extra = ob.point_values(ob.outputs(batch), batch)
                losses.append(loss)
                preds.append(pred)
                extras.append(extra)
            per_batch.append(ob.value_rows(  # [values, points]
                torch.stack(losses), torch.stack(preds) if ob.classification else None,
                [torch.stack(col) for col in zip(*extras)], batch,
            ))
    return torch.stack(per_batch, dim=-1), ob.data.sizes


def evaluate_batched(
    objective: Objective,
    theta: torch.Tensor,
    directions: torch.Tensor,
    coeffs: torch.Tensor,
    rows: int | None = None,
    vmap_values: bool = True,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """All points of ``coeffs`` through one vmapped forward per (sub-)batch.

    Parameters
    ----------
    rows : int, optional
        Split every batch into pieces of at most this many samples (memory plan).
    vmap_values : bool
        Vmap the loss and metrics too (``True``, needed for outputs that are not a
        tensor); ``False`` vmaps only the forward and computes each point's loss in
        turn, which on a CPU avoids vmap's one-off set-up of the loss decomposition
        (it imports sympy, about 0.4 s).

    Returns
    -------
    values, sizes
        As :func:`evaluate_loop`; the batches are the pieces.
    """
    ob = objective
    params = ob.layout.split(torch.addmm(theta, coeffs, directions).to(ob.dtype))

    def stacked(outputs, batch):
        return ob.value_rows(*ob.point_values(outputs, batch), batch)

    per_piece, sizes = [], []
    with ob.lock, torch.inference_mode():
        for batch in ob.data:
            for piece in split_batch(batch, rows) if rows else [batch]:
                if vmap_values:
                    vals = torch.vmap(lambda p, b: stacked(ob.functional_outputs(p, b), b), in_dims=(0, None))(
                        params, piece)
                else:
                    outs = vmapped_outputs(ob, params, piece)
                    vals = torch.stack([stacked(o, piece) for o in outs.unbind(0)])
                per_piece.append(vals.T)  # [values, points]
                sizes.append(n_rows(piece))
    _vmap_ran.add(vmap_values)
    return torch.stack(per_piece, dim=-1), tuple(sizes)


def vmapped_outputs(objective: Objective, params: dict[str, torch.Tensor], batch):
    """The model's outputs on ``batch`` at every point of ``params`` (``{name: [points,
    ...]}``, see :meth:`Objective.functional_outputs`) from one vmapped forward: a tensor
    ``[points, ...]``."""
    outputs = torch.vmap(objective.functional_outputs, in_dims=(0, None))(params, batch)
    _vmap_ran.add(False)
    return outputs
