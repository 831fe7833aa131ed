"""Run-level tools, above :mod:`adalif.train`: they read run directories and checkpoints, and
train many runs from one config.

* :mod:`.report`: ``adalif report`` (one run) and ``adalif compare`` (runs side by side);
* :mod:`.ablation`: ``adalif ablate`` (the papers' ablation studies) and ``adalif heatmap``;
* :mod:`.figures`: ``adalif figure`` (AR-LIF's Figure 1(b) and 1(c)).

What works on any ``nn.Module`` (firing-rate monitors, operation counts, energy) stays in
:mod:`adalif.analysis`, which imports without Lightning.
"""

from .ablation import STUDIES, run_ablation, run_heatmap
from .figures import potential_distributions, spike_rasters
from .report import read_metrics, write_comparison, write_report

__all__ = ["STUDIES", "potential_distributions", "read_metrics", "run_ablation", "run_heatmap", "spike_rasters",
           "write_comparison", "write_report"]
