"""``make demo``: the main job on data that ships with the install.

Trains DA-LIF and AR-LIF spiking CNNs on scikit-learn's digits and on their event-camera version
(configs/digits_*.yaml), in one process, and prints test accuracy, mean firing rate and wall time.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from importlib import resources

CONFIGS = ["digits_dalif", "digits_arlif", "digits_events_dalif", "digits_events_arlif"]


def _config_dir() -> str:
    # Shipped as package data (configs/ at the top of the repository links to it), so the demo
    # runs from an installed, non-editable package too.
    return str(resources.files("adalif") / "configs")


class EpochLines:
    """A Lightning callback printing one line per epoch (test accuracy, firing rate, elapsed time):
    progress that reads the same in a terminal and in a log file, where a progress bar does not."""

    def __new__(cls, epochs: int):
        import lightning as L

        class _EpochLines(L.Callback):
            def on_fit_start(self, trainer, pl_module) -> None:
                self.start = time.perf_counter()

            def on_validation_epoch_end(self, trainer, pl_module) -> None:
                metrics = trainer.callback_metrics
                if trainer.sanity_checking or not trainer.is_global_zero or "val/acc" not in metrics:
                    return
                print(f"  epoch {trainer.current_epoch + 1}/{epochs}: test accuracy {100 * float(metrics['val/acc']):.2f} %, "
                      f"firing rate {float(metrics.get('val/fr', float('nan'))):.3f}, "
                      f"{time.perf_counter() - self.start:.1f} s", flush=True)

        return _EpochLines()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="runs/demo", help="where runs are written (replaced each time)")
    parser.add_argument("--configs", default=str(_config_dir()), help="folder holding digits_*.yaml")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (the README's numbers are for 1)")
    args = parser.parse_args(argv)
    # The neurons run on their fused C kernels (the automatic choice; built on first use in about
    # 2 s, then cached), unless ADALIF_BACKEND says otherwise.
    # Lightning's start-up tips and per-run banners would bury the table.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    from .cli import parse_config
    from .train.run import train

    rows, start = [], time.perf_counter()
    for name in CONFIGS:
        path = os.path.join(args.configs, f"{name}.yaml")
        # One CPU thread: the same numbers on every machine (PyTorch's default, a thread per core,
        # changes the last bits of every reduction with the core count), and a time that grows in
        # proportion to the load of a shared machine (two threads slow down 2-3x more than the load
        # explains: benchmarks/under_load.py, docs/training.md).
        cfg = parse_config(["--config", path, "--output_dir", args.output_dir, "--overwrite", "true",
                            "--trainer.progress_bar", "false", "--trainer.threads", str(args.threads)])
        s = train(cfg, callbacks=[EpochLines(cfg.trainer.max_epochs)])
        rows.append((name, cfg.expected_accuracy, s))
    print(f"\n{'run':<22} {'best acc':>9} {'last acc':>9} {'target':>8} {'met':>4} {'firing rate':>11} {'wall s':>7}")
    for name, expected, s in rows:
        met = "" if expected is None else ("yes" if s.best_acc >= expected else "NO")
        target = "" if expected is None else f"{100 * expected:.1f} %"
        print(f"{name:<22} {100 * s.best_acc:>7.2f} % {100 * s.last_acc:>7.2f} % {target:>8} {met:>4} "
              f"{s.firing_rate:>11.4f} {s.wall_time_s:>7.1f}")
    from .experiments.report import write_comparison

    out = write_comparison([s.run_dir for _, _, s in rows], os.path.join(args.output_dir, "comparison"))
    print(f"total wall time {time.perf_counter() - start:.1f} s; runs, logs and checkpoints in {args.output_dir}/")
    print(f"comparison report: {out}/comparison.html (and comparison.md)")


if __name__ == "__main__":
    main()
