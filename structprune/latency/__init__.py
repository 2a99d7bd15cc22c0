"""Latency: sound timing of models side by side and a per-layer latency model for pruning targets.

* :mod:`.timing`: time models in alternation (warm-up, many runs, CUDA events on CUDA) and report
  min / median / max and the speed-up with its spread (``compare_latency``).
* :mod:`.table`: measured layer timings cached on disk per device and dtype (``LatencyTable``).
* :mod:`.probes`: how each layer type is timed alone at other widths (a registry by module type).
* :mod:`.estimate`: ``LatencyModel``: a model's latency as the sum of its layers' interpolated
  lookups plus a residual measured once for the rest of the forward.

Example::

    from structprune.latency import compare_latency
    result = compare_latency(original, pruned, torch.randn(8, 3, 224, 224), repeat=20)
    print(result.summary())          # "12.1 ms -> 6.3 ms, 1.92x (1.85x-1.99x)"
"""

from structprune.latency.placement import Placement
from structprune.latency.timing import LatencyComparison, LatencyStats, SpeedUp, compare_latency, time_models

__all__ = ["Placement", "LatencyComparison", "LatencyStats", "SpeedUp", "compare_latency", "time_models"]
