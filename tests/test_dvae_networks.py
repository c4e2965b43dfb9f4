"""Networks: the gated convolutional encoder/decoder of paper 001 App. A and the MLPs, by shape,
gradient flow and input checks."""

import pytest

torch = pytest.importorskip("torch")

from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.networks import DECODERS, ENCODERS  # noqa: E402
from qvae_core.dvae.train import build_model  # noqa: E402


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_encoder_and_decoder_shapes_and_gradients(kind):
    model = build_model(TrainConfig(encoder=kind, latent="8x8", groups=4, encoder_hidden=[32],
                                    decoder_hidden=[32]), (28, 28))
    features = model.posterior.encoder(torch.zeros(3, 784))
    assert features.shape == (3, 784 if kind == "mlp" else 128)
    assert model.decoder(torch.zeros(3, 16)).shape == (3, 784)
    x = (torch.rand(4, 784, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    objective = model.objective(x, generator=torch.Generator().manual_seed(1))
    objective.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if kind == "conv":  # the gated convolutions learn (the MLP encoder is the identity)
        assert all(p.grad.abs().sum() > 0 for p in model.posterior.encoder.parameters())


def test_conv_networks_need_28x28_images():
    with pytest.raises(ValueError, match="28x28"):
        ENCODERS["conv"](36, (6, 6))
    with pytest.raises(ValueError, match="28x28"):
        DECODERS["conv"](16, [], 36, (6, 6))


def test_decoder_bias_starts_at_the_data_log_odds():
    mean = torch.full((784,), 0.25)
    model = build_model(TrainConfig(latent="4x4", groups=2), (28, 28), mean)
    torch.testing.assert_close(model.decoder.output_bias.detach(), torch.logit(mean))
