"""Training on PyTorch Lightning: configs, the LightningModule, data, callbacks and the CLI."""
