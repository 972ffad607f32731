"""cluster.yaml (AWS) and cluster-local.yaml (machines you own) pass Ray's own validation of
`ray up` files, offline, and keep the cluster closed: no port but SSH open to the world, the
dashboard on 127.0.0.1, token authentication on every node, the pinned versions installed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.aws.config import _create_default_inbound_rules
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = ["cluster.yaml", "cluster-local.yaml"]


def _prepared(name: str) -> dict:
    config = prepare_config(yaml.safe_load((ROOT / name).read_text()))
    validate_config(config)  # Ray's schema check: raises on an unknown or mistyped key
    return config


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_passes_rays_validation_and_starts_ray_closed(name):
    config = _prepared(name)
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head + workers
    for commands in (head, workers):
        starts = [c for c in re.split(r"[;\n]", commands) if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), commands
    # every node gets the token, and the interactive shell on the head uses it
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert any("RAY_AUTH_MODE=token" in c for c in config["setup_commands"])


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_installs_the_project_at_the_tested_versions(name):
    config = _prepared(name)
    assert config["file_mounts"]["~/gensweep"] == "."
    installs = [c for c in config["setup_commands"] if "pip install" in c]
    assert installs and all("-c ~/gensweep/constraints.txt" in c for c in installs)
    pinned = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert pinned["torch"] == "2.14.1" and pinned["torchvision"] == "0.29.1" and pinned["ray"] == "2.60.0"
    images = [config["docker"][key] for key in ("image", "head_image", "worker_image") if config["docker"].get(key)]
    for image in images:  # Ray's image must carry the same Ray and Python as the project
        assert image.startswith(f"rayproject/ray:{pinned['ray']}-py311")


def test_aws_pool_is_gpu_workers_that_scale_to_zero():
    config = _prepared("cluster.yaml")
    head = config["available_node_types"][config["head_node_type"]]
    workers = config["available_node_types"]["gpu_worker"]
    assert head["resources"].get("GPU", 0) == 0 and workers["resources"]["GPU"] >= 1
    assert workers["min_workers"] == 0 < workers["max_workers"] <= config["max_workers"]
    assert config["idle_timeout_minutes"] > 0 and config["provider"]["cache_stopped_nodes"] is False


def test_aws_security_group_opens_only_ssh_to_the_world():
    config = _prepared("cluster.yaml")
    # The rules Ray itself writes into the group it creates, from this file's extra rules.
    rules = _create_default_inbound_rules({"sg-gensweep"}, config["provider"]["security_group"]["IpPermissions"])
    open_to_world = [r for r in rules if any(ip.get("CidrIp") == "0.0.0.0/0" for ip in r.get("IpRanges", []))]
    assert [(r["FromPort"], r["ToPort"]) for r in open_to_world] == [(22, 22)]
    assert all("IpRanges" not in r for r in rules if r not in open_to_world)  # the rest: the group's own nodes


def test_local_provider_lists_head_and_workers():
    config = _prepared("cluster-local.yaml")
    provider = config["provider"]
    assert provider["type"] == "local" and provider["head_ip"] and len(provider["worker_ips"]) >= 1
    assert config["auth"]["ssh_user"] and config["auth"]["ssh_private_key"]
