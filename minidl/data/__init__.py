"""minidl.data: datasets (ImageNet, image folders, IDX/Fashion-MNIST), seeded transforms and
a DataLoader with worker processes.

    from minidl.data import ImageNet, DataLoader, train_transform
    ds = ImageNet("/data/imagenet", "train", transform=train_transform(224))
    loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=2, seed=0)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for images, labels in loader:   # float32 N x 3 x 224 x 224, int64 N
            ...
"""
from .folder import (IMG_EXTENSIONS, CorruptImageError, Dataset, ImageFolder, load_image,
                     sample_rng)
from .idx import (FASHION_MNIST_DEFAULT_ROOT, FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST,
                  FashionMNIST, IDXDataset, read_idx)
from .imagenet import ImageNet, imagenet_class_names, imagenet_wnids
from .loader import DataLoader
from .subset import Subset
from . import augment, transforms
from .augment import (AutoAugment, ColorJitter, Lighting, MixupCutmix, PhotometricDistort,
                      RandAugment, RandomErasing, ScaleJitter, TrivialAugmentWide)
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, CenterCrop, Compose, Normalize,
                         RandomCrop, RandomHorizontalFlip, RandomResizedCrop, Resize, TenCrop,
                         ToArray, eval_transform, ten_crop_transform, train_transform)

__all__ = ["Dataset", "ImageFolder", "ImageNet", "IDXDataset", "FashionMNIST", "MNIST",
           "DataLoader", "Subset", "CorruptImageError", "read_idx", "load_image", "sample_rng",
           "imagenet_wnids", "imagenet_class_names", "transforms", "augment", "AutoAugment",
           "RandAugment", "TrivialAugmentWide", "ColorJitter", "Lighting", "PhotometricDistort",
           "ScaleJitter", "RandomErasing", "MixupCutmix", "Compose",
           "RandomResizedCrop", "RandomCrop", "RandomHorizontalFlip", "Resize", "CenterCrop",
           "TenCrop", "ToArray", "Normalize", "IMAGENET_MEAN", "IMAGENET_STD",
           "train_transform", "eval_transform", "ten_crop_transform",
           "FASHION_MNIST_DEFAULT_ROOT", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD",
           "IMG_EXTENSIONS"]
