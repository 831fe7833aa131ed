"""Spiking models, created by name: ``create_model("resnet19", neuron="dalif", num_classes=10)``."""

from . import registry, resnet, vgg  # noqa: F401  (registers the models)
from .registry import PRESETS, create_model, list_models, model_for_data, neuron_factory, neuron_names, register_model


def __getattr__(name: str):
    """``NEURONS``: neuron name -> module class of every registered neuron (adalif.definitions), read
    at each access."""
    if name == "NEURONS":  # name -> module class of every registered neuron (adalif.definitions)
        return registry.NEURONS
    raise AttributeError(name)


__all__ = ["NEURONS", "PRESETS", "create_model", "list_models", "model_for_data", "neuron_factory", "neuron_names",
           "register_model"]
