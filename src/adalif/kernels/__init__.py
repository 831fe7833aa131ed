"""Fast paths for the neuron dynamics, with the same signatures as :mod:`adalif.functional`."""
