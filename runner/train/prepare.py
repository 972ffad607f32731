"""What a sweep needs done once, before its trials start: the data checked, decoded into the
shared cache (image-file sources), drawn (digits), and the quality network trained. `gensweep run`
does it in the driver before Ray starts, so trials that start together do not all do it at once;
`gensweep prepare` does it alone, ahead of a sweep."""

from __future__ import annotations

from collections.abc import Callable

from runner import data as data_sources
from runner.data import decoded
from runner.spec import Spec
from runner.train.quality_keys import class_features_cached


def prepare_data(spec: Spec, say: Callable[[str], None] = lambda message: None) -> data_sources.ImageArrays:
    """The spec's data, loaded as a trial loads it (from the cache, decoding it first when the
    cache does not hold it), with the quality network ready when the spec measures quality."""
    data_sources.SOURCES[spec.data_name].check(spec.data)
    if spec.data_name == "digits":
        for split, count in (("train", spec.data.train_size), ("val", spec.data.val_size)):
            if not data_sources.digits_cache_path(count, spec.data.seed, split).exists():
                say(f"drawing {count:,} {split} digits (once: cached in {data_sources.cache_dir()})")
    with decoded.reporting(say):
        arrays = data_sources.load(spec.data_name, spec.data)
    if decoded.is_mapped(arrays.train_images):
        say(f"data: decoded images mapped from {decoded.decoded_root()} (a cache on each node, "
            "unless GENSWEEP_CACHE is storage every node shares)")
    plan = spec.quality_plan()
    if plan.class_features and not plan.inception and class_features_cached(arrays, spec.quality.samples):
        return arrays  # checked and computed before: the trials load them (and torch stays out of the driver)
    if plan.metrics:
        import torch

        from runner.spec.quality import find_inception_weights
        from runner.train import quality
        from runner.train.tensors import from_arrays

        data = from_arrays(arrays)
        if plan.class_features:
            fresh = not quality.feature_net_path(data).exists()
            network = quality.load_feature_net(data, say)
            if fresh:
                say(f"feature network: {quality.feature_net_accuracy(network, data):.1%} accuracy on the val images")
        # A foreign Inception file is refused here, not in every trial; and the val images'
        # features are computed (and cached) once here, not by every trial as it starts.
        weights = find_inception_weights(spec.quality.inception_path) if plan.inception else None
        quality.QualityMeter(data, spec.quality.samples, torch.device("cpu"), plan.class_features, weights)
    return arrays
