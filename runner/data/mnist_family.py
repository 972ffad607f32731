"""`fashion_mnist`, `kmnist`, `emnist`: IDX sets in MNIST's layout, read by mnist's reader
(runner/data/mnist.py: IdxLayout, check_idx_set, load_idx_set); each is only its layout.

Fashion-MNIST and KMNIST name their files as MNIST does (train-images-idx3-ubyte[.gz], ...,
t10k-labels-idx1-ubyte[.gz]); torchvision keeps them in FashionMNIST/raw and KMNIST/raw.
EMNIST's files are emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]
(torchvision: EMNIST/raw). EMNIST stores each image transposed: read upright here. Its
`letters` labels run 1-26 (a-z, case merged): 0-25 here."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from runner.data.base import DataSource, ImageArrays
from runner.data.mnist import MNIST, IdxLayout, check_idx_set, count_idx_set, load_idx_set


@config
class IdxData:
    path: str = Field(description="directory with train-* and/or t10k-* IDX files (.gz or raw)")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of the test set held out for val when there are no train files"
    )
    train_size: int | None = Field(None, ge=1, description="use only the first N training images")
    val_size: int | None = Field(None, ge=1, description="use only the first N val images")
    seed: int = Field(0, description="seed of the test-set train/val split")


EmnistSplit = Literal["balanced", "byclass", "bymerge", "digits", "letters", "mnist"]


@config
class EmnistData:
    path: str = Field(description="directory with emnist-<split>-train-* and/or -test-* IDX files (.gz or raw)")
    split: EmnistSplit = Field(
        "balanced", description="which EMNIST split: balanced|byclass|bymerge|digits|letters|mnist"
    )
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of the test set held out for val when there are no train files"
    )
    train_size: int | None = Field(None, ge=1, description="use only the first N training images")
    val_size: int | None = Field(None, ge=1, description="use only the first N val images")
    seed: int = Field(0, description="seed of the test-set train/val split")


FASHION_MNIST = replace(MNIST, name="Fashion-MNIST", torchvision_folder="FashionMNIST")  # MNIST's file names
KMNIST = replace(MNIST, name="KMNIST", torchvision_folder="KMNIST")
EMNIST_CLASSES = {"balanced": 47, "byclass": 62, "bymerge": 47, "digits": 10, "letters": 26, "mnist": 10}


def emnist_layout(split: str) -> IdxLayout:
    return IdxLayout(
        f"EMNIST {split}",
        "EMNIST",
        train=(f"emnist-{split}-train-images", f"emnist-{split}-train-labels"),
        test=(f"emnist-{split}-test-images", f"emnist-{split}-test-labels"),
        num_classes=EMNIST_CLASSES[split],
        transposed=True,
        first_label=1 if split == "letters" else 0,
    )


def _idx_source(layout: IdxLayout) -> DataSource:
    def describe(_: IdxData) -> DataInfo:
        return DataInfo((1, 28, 28), layout.num_classes)

    def check(data: IdxData) -> None:
        check_idx_set(data, layout)

    def load(data: IdxData) -> ImageArrays:
        return load_idx_set(data, layout)

    return DataSource(IdxData, describe, check, load, lambda data: count_idx_set(data, layout))


def _describe_emnist(data: EmnistData) -> DataInfo:
    return DataInfo((1, 28, 28), EMNIST_CLASSES[data.split])


def _check_emnist(data: EmnistData) -> None:
    check_idx_set(data, emnist_layout(data.split))


def _load_emnist(data: EmnistData) -> ImageArrays:
    return load_idx_set(data, emnist_layout(data.split))


FASHION_MNIST_SOURCE = _idx_source(FASHION_MNIST)
KMNIST_SOURCE = _idx_source(KMNIST)
EMNIST_SOURCE = DataSource(
    EmnistData, _describe_emnist, _check_emnist, _load_emnist, lambda data: count_idx_set(data, emnist_layout(data.split))
)
