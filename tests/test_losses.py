import pytest
import torch

from adalif.losses import SpikingLoss, mean_ce_loss, predict, tet_loss


def direct_tet(logits, y, lamb, phi, onehot):
    """The TET formula written out term by term (recipes.md 2.1/2.2)."""
    T, B, K = logits.shape
    ce = 0.0
    for t in range(T):
        logp = torch.log_softmax(logits[t], dim=1)
        ce = ce + (-(y * logp).sum(1)).mean() if y.dim() == 2 else ce + (-logp[torch.arange(B), y]).mean()
    ce = ce / T
    goal = torch.nn.functional.one_hot(y, K).float() if onehot else torch.full((B, K), phi)
    mse = sum(((logits[t] - goal) ** 2).sum() for t in range(T)) / (T * B * K)
    return (1 - lamb) * ce + lamb * mse


@pytest.mark.parametrize("lamb, phi", [(0.0, 1.0), (0.05, 1.0), (0.3, 0.5)])
def test_tet_equals_direct_formula(lamb, phi):
    logits = torch.randn(4, 6, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (6,))
    torch.testing.assert_close(tet_loss(logits, y, lamb, phi), direct_tet(logits, y, lamb, phi, False))
    torch.testing.assert_close(tet_loss(logits, y, 0.2, target="onehot"), direct_tet(logits, y, 0.2, 0, True))


def test_tet_accepts_soft_targets():
    logits = torch.randn(3, 4, 5, dtype=torch.float64)
    soft = torch.softmax(torch.randn(4, 5, dtype=torch.float64), 1)
    torch.testing.assert_close(tet_loss(logits, soft, 0.0), direct_tet(logits, soft, 0.0, 1.0, False))
    # soft one-hot equals the hard label
    y = torch.tensor([0, 3, 1, 4])
    torch.testing.assert_close(tet_loss(logits, torch.nn.functional.one_hot(y, 5).double(), 0.05), tet_loss(logits, y, 0.05))


def test_mean_ce_and_prediction_use_the_mean_over_time():
    logits = torch.tensor([[[2.0, 0.0]], [[-3.0, 0.0]]])  # step 0 says class 0, the mean says class 1
    assert predict(logits).tolist() == [1]
    torch.testing.assert_close(mean_ce_loss(logits, torch.tensor([1])), torch.nn.functional.cross_entropy(logits.mean(0), torch.tensor([1])))


def test_loss_module_and_errors():
    logits, y = torch.randn(2, 3, 4), torch.tensor([0, 1, 2])
    torch.testing.assert_close(SpikingLoss("tet", mse_weight=0.1)(logits, y), tet_loss(logits, y, 0.1))
    with pytest.warns(DeprecationWarning, match="loss.lamb is deprecated"):  # the old name still works
        torch.testing.assert_close(SpikingLoss("tet", lamb=0.1)(logits, y), tet_loss(logits, y, 0.1))
    with pytest.raises(ValueError, match="loss.kind: unknown value 'mse'"):
        SpikingLoss("mse")
    with pytest.raises(ValueError, match="loss.mse_weight: expected a weight in"):
        SpikingLoss("tet", mse_weight=1.5)


def test_last_step_loss_and_prediction_read_only_the_last_step():
    import torch.nn.functional as F

    from adalif.losses import SpikingLoss

    logits = torch.randn(5, 4, 3)
    y = torch.tensor([0, 1, 2, 1])
    loss = SpikingLoss(kind="last")
    assert torch.equal(loss(logits, y), F.cross_entropy(logits[-1], y))
    changed = logits.clone()
    changed[:-1] = torch.randn(4, 4, 3) * 100  # earlier steps do not count
    assert torch.equal(loss(changed, y), loss(logits, y))
    assert torch.equal(loss.predict(changed), logits[-1].argmax(1))
    assert torch.equal(SpikingLoss(kind="ce").predict(logits), logits.mean(0).argmax(1))
