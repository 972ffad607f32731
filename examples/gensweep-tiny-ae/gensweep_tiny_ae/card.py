"""What gensweep reads without torch: the config (the spec's `model:` section) and the card."""

from pydantic import Field

from models.cards import ModelCard, check_pairing
from models.config import config


@config
class TinyAEConfig:
    latent_dim: int = Field(4, ge=1, description="size of the code")
    hidden_dim: int = Field(64, ge=1, description="width of the one hidden layer each side")


def check(config: TinyAEConfig, data) -> None:
    check_pairing(None, data)  # images alone: digits, mnist, folder


CARD = ModelCard(
    "tiny_ae", TinyAEConfig, "A tiny MLP autoencoder (example plugin: examples/gensweep-tiny-ae).",
    reported_metrics=lambda config: ("loss",), check=check,
    model_module="gensweep_tiny_ae.model",  # imported where the model is built, torch with it
)
