"""The result of a simulation: outputs at every step and exact operation counts.

Both engines (``"numba"`` and ``"reference"``) return a :class:`SimResult`; results of
several batches of images are joined with :meth:`SimResult.merge` or :func:`concatenate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RECORD_KINDS = ("neuron_counts", "potential", "trains")
"""Per-neuron records :func:`eventsnn.simulate` can keep (its ``record=`` argument).

``records[kind][population] -> ndarray``, neurons in the public C-order layout:

- ``"neuron_counts"``: int64 ``(B, N)``, total spikes per neuron over the whole run, for every
  spiking population (``"if"``, ``"lif"``, ``"lipool"``, ``"maxgate"``);
- ``"potential"``: float32 ``(B, N)``, membrane potential ``V`` after the last step, for every
  ``"if"`` (Eq. 2-4) and ``"lif"`` population;
- ``"trains"``: int64 ``(T, B, N)``, spike count of every neuron at every step, for every
  spiking population (meant for small networks: memory ``8·T·B·N`` bytes).
"""

# Records whose batch axis is 0; "trains" have it at axis 1 (behind the time axis).
_BATCH_AXIS = {"neuron_counts": 0, "potential": 0, "trains": 1}


@dataclass
class SimResult:
    """Outputs and operation counts of a simulation of ``n_images`` images for ``T`` steps.

    Attributes
    ----------
    T : int
        Number of time steps simulated.
    outputs : ndarray, float32, shape (T, B, n_out)
        Membrane potential ``U(t)`` of the non-spiking output integrator after step ``t``
        (``U += W·s + b`` every step); the prediction at step ``t`` is ``argmax U(t)``.
    spikes : dict of str -> ndarray of int64, shape (T,)
        Per spiking population: spikes emitted at each step, summed over the batch, a burst
        of ``s`` spikes (Eq. 4) counting ``s``.
    events : dict of str -> ndarray of int64, shape (T,)
        Per spiking population: spike events at each step summed over the batch, a burst
        counting once.
    synops : dict of str -> ndarray of int64, shape (T,)
        Per connection (key ``"src->dst"``): synaptic operations (accumulates) at each step,
        summed over the batch: ``Σ_events multiplicity × fan_out[source neuron]``. With direct
        coding the connections from ``"input"`` carry analog currents, cost MACs (see
        ``input_macs``) and report 0 SynOps; with Poisson coding every input spike counts.
    input_macs : int
        Multiply-accumulates spent on the analog input (direct coding) for the whole batch:
        the input current of every connection from ``"input"`` is computed once per image,
        costing the structural MACs of that connection (``fan_out().sum()``), and reused at
        every step. 0 with Poisson coding.
    burst_hist : dict of str -> ndarray of int64, shape (Γ+1,)
        Per ``"if"`` and ``"lif"`` (Γ = 1) population: ``burst_hist[k]`` = number of events
        of exactly ``k`` spikes over the whole run (index 0 is always 0: silence is not an
        event).
    n_images : int
        Number of images ``B``.
    records : dict
        Optional per-neuron records, ``records[kind][population]``; see :data:`RECORD_KINDS`.
    """

    T: int
    outputs: np.ndarray
    spikes: dict
    events: dict
    synops: dict
    input_macs: int
    burst_hist: dict
    n_images: int
    records: dict = field(default_factory=dict)

    def predictions(self):
        """Predicted class ``argmax U(t)`` of every image at every step, int64 ``(T, B)``.

        Ties go to the lowest class index.
        """
        return np.argmax(self.outputs, axis=2).astype(np.int64)

    def accuracy(self, y):
        """Fraction of correct predictions at every step, float64 ``(T,)``.

        Parameters
        ----------
        y : array_like of int, shape (B,)
            True labels of the simulated images, in the order they were given, each in
            ``[0, n_out)``: a label the network cannot predict raises ``ValueError``.
        """
        from ..validation import check_labels

        if self.n_images == 0:
            raise ValueError("no images were simulated; accuracy is undefined")
        y = check_labels(y, self.n_images, self.outputs.shape[2])
        return (self.predictions() == y[None, :]).mean(axis=1, dtype=np.float64)

    def total_synops(self):
        """Total SynOps over all connections, steps and images (int)."""
        return int(sum(int(v.sum()) for v in self.synops.values()))

    def total_spikes(self):
        """Total spikes over all spiking populations, steps and images (int)."""
        return int(sum(int(v.sum()) for v in self.spikes.values()))

    def merge(self, other):
        """A new result for the images of ``self`` followed by those of ``other``.

        Outputs and records are concatenated along the batch axis; per-step counts, burst
        histograms, ``input_macs`` and ``n_images`` are added.
        """
        return concatenate([self, other])


def _sum_dicts(dicts):
    keys = list(dicts[0])
    for d in dicts[1:]:
        if list(d) != keys:
            raise ValueError(f"cannot merge results with different keys: {keys} vs {list(d)}")
    return {k: np.sum([d[k] for d in dicts], axis=0).astype(np.int64) for k in keys}


def concatenate(results):
    """Join results of consecutive batches of images simulated with the same network and T.

    Parameters
    ----------
    results : sequence of SimResult
        At least one; all with the same ``T``, populations, connections and records.

    Returns
    -------
    SimResult
        Images in the order given.
    """
    results = list(results)
    if not results:
        raise ValueError("concatenate needs at least one SimResult")
    if any(not isinstance(r, SimResult) for r in results):
        raise TypeError("concatenate joins SimResult objects only")
    if len(results) == 1:
        return results[0]
    first = results[0]
    if any(r.T != first.T for r in results):
        raise ValueError(f"cannot merge results with different T: {[r.T for r in results]}")
    if any(set(r.records) != set(first.records) for r in results):
        raise ValueError("cannot merge results that recorded different things")
    records = {}
    for kind in first.records:
        axis = _BATCH_AXIS.get(kind, 0)
        records[kind] = {pop: np.concatenate([r.records[kind][pop] for r in results], axis=axis)
                         for pop in first.records[kind]}
    return SimResult(
        T=first.T,
        outputs=np.concatenate([r.outputs for r in results], axis=1),
        spikes=_sum_dicts([r.spikes for r in results]),
        events=_sum_dicts([r.events for r in results]),
        synops=_sum_dicts([r.synops for r in results]),
        input_macs=int(sum(int(r.input_macs) for r in results)),
        burst_hist=_sum_dicts([r.burst_hist for r in results]),
        n_images=int(sum(int(r.n_images) for r in results)),
        records=records,
    )
