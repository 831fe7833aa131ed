"""``make demo``: the main job on data that ships with the install."""

from __future__ import annotations

import time

import torch

from .neurons import ARLIF, DALIF, LIF, PLIF


def neuron_demo() -> None:
    """Drive each neuron with the same input and print firing rates and timings."""
    torch.manual_seed(0)
    x = torch.randn(8, 64, 128, 8, 8) * 1.5
    print(f"Input [T, B, C, H, W] = {list(x.shape)}")
    print(f"{'neuron':<34} {'firing rate':>11} {'fwd+bwd ms':>11}  backend")
    for name, neuron in [
        ("LIF (tau 2, hard reset)", LIF()),
        ("PLIF (init tau 2)", PLIF()),
        ("DA-LIF (per layer, tanh)", DALIF()),
        ("DA-LIF (per channel)", DALIF(granularity="channel", num_channels=128)),
        ("AR-LIF (adaptive reset + threshold)", ARLIF()),
    ]:
        xr = x.clone().requires_grad_(True)
        start = time.perf_counter()
        spikes = neuron(xr)
        spikes.sum().backward()
        ms = (time.perf_counter() - start) * 1e3
        print(f"{name:<34} {spikes.mean().item():>11.4f} {ms:>11.1f}  {neuron.last_backend}")


def main() -> None:
    neuron_demo()


if __name__ == "__main__":
    main()
