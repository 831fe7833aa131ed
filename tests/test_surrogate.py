import math
import pickle

import pytest
import torch

from adalif.surrogate import ATan, DspikeTanh, Rectangle, Sigmoid, Triangle, get_surrogate, heaviside

ALL = [Rectangle(1.0), Rectangle(0.5), Triangle(1.0), Triangle(2.0), Sigmoid(4.0), ATan(2.0), DspikeTanh(3.0)]


def test_heaviside_fires_at_zero():
    u = torch.tensor([-1e-7, 0.0, 1e-7])
    assert heaviside(u).tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("sg", ALL, ids=repr)
def test_forward_is_heaviside_and_backward_is_derivative(sg):
    u = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    s = sg(u)
    assert torch.equal(s, (u >= 0).double())
    (g,) = torch.autograd.grad(s.sum(), u)
    torch.testing.assert_close(g, sg.derivative(u.detach()))


@pytest.mark.parametrize("sg", ALL, ids=repr)
def test_derivative_is_the_derivative_of_the_primitive(sg):
    # Away from kinks, autograd of the smooth primitive equals the surrogate formula.
    u = torch.linspace(-1.9, 1.9, 77, dtype=torch.float64)
    kinks = torch.tensor([-sg.scale / 2, sg.scale / 2, -sg.scale, sg.scale, -0.5, 0.5], dtype=torch.float64)
    u = u[(u[:, None] - kinks[None]).abs().min(dim=1).values > 1e-3].requires_grad_(True)
    smooth = type(sg)(sg.scale, spiking=False)
    (g,) = torch.autograd.grad(smooth(u).sum(), u)
    torch.testing.assert_close(g, sg.derivative(u.detach()))


def test_formulas_at_known_points():
    z = torch.tensor([0.0], dtype=torch.float64)
    assert Rectangle(1.0).derivative(torch.tensor([0.5, 0.5001])).tolist() == [1.0, 0.0]
    assert Triangle(1.0).derivative(torch.tensor([0.25])).item() == pytest.approx(0.75)
    assert Sigmoid(4.0).derivative(z).item() == pytest.approx(1.0)  # peak alpha/4
    assert ATan(2.0).derivative(z).item() == pytest.approx(1.0)  # peak alpha/2
    # Dspike b=3: peak 1.657 on the threshold, 0.299 at the window's edges (neurons.md section 3)
    d = DspikeTanh(3.0).derivative(torch.tensor([0.0, -0.4999999, 0.4999999], dtype=torch.float64))
    assert d.tolist() == pytest.approx([1.657, 0.299, 0.299], abs=1e-3)
    assert DspikeTanh(3.0).derivative(torch.tensor([0.5, -0.5, 0.7])).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("sg", ALL, ids=repr)
def test_picklable_hashable_and_readable(sg):
    assert pickle.loads(pickle.dumps(sg)) == sg
    assert hash(sg) == hash(type(sg)(sg.scale))
    assert repr(sg).startswith(type(sg).__name__ + "(scale=")


def test_get_surrogate_and_errors():
    assert get_surrogate("atan") == ATan(2.0)
    assert get_surrogate({"name": "zif", "scale": 0.5}) == Triangle(0.5)
    # The old name of the shape parameter still works, with a deprecation warning.
    with pytest.warns(DeprecationWarning, match="the surrogate's shape parameter is `scale`"):
        assert get_surrogate({"name": "zif", "alpha": 0.5}) == Triangle(0.5)
    with pytest.warns(DeprecationWarning, match="Surrogate.alpha is deprecated"):
        assert Triangle(0.5).alpha == 0.5
    with pytest.raises(ValueError, match="surrogate: unknown name 'relu'"):
        get_surrogate("relu")
    with pytest.raises(ValueError, match="scale must be a positive"):
        Sigmoid(-1.0)
    with pytest.raises(ValueError, match="scale must be a positive"):
        ATan(math.nan)
