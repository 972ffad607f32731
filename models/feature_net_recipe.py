"""The version of the feature network's recipe (models.feature_net), in a module without torch:
cached weights are keyed by it, and `gensweep run` finds them before it imports torch
(runner.train.quality_keys)."""

RECIPE_VERSION = 1  # bump when the network or its training (models.feature_net) changes
