"""Spiking models, created by name: ``create_model("resnet19", neuron="dalif", num_classes=10)``."""

from . import resnet, vgg  # noqa: F401  (registers the models)
from .registry import NEURONS, PRESETS, create_model, list_models, model_for_data, neuron_factory, register_model

__all__ = ["NEURONS", "PRESETS", "create_model", "list_models", "model_for_data", "neuron_factory", "register_model"]
