"""Training recipes: each architecture's published hyperparameters, kept as data with
their citation, for ``minidl-train --recipe NAME``.

A recipe gives the optimizer, the learning rate and the batch size it was published
with, the schedule (in epochs), regularization (weight decay, label smoothing,
dropout, stochastic depth, weight EMA) and the training augmentation (AlexNet's PCA
lighting, VGG/ResNet scale jittering, GoogLeNet's photometric distortions,
fb.resnet.torch's colour jitter, AutoAugment; minidl/data/augment.py).  ``note`` states
the paper's settings, ``deviates`` what the recipe does differently and why.
Augmentations that need RGB images are left out, with a note, on the IDX digit sets.  Each registered model names its recipe
(``@register_model(recipe=...)``) and supplies the image sizes; a recipe for other data
(``densenet_cifar``) fixes its own.  ``resolve(recipe, batch_size)`` turns it into
training options; where the paper (or its reference implementation) scales the
learning rate linearly with the batch, ``lr = lr * batch_size / base_batch``
(Goyal et al., "Accurate, Large Minibatch SGD", 2017).  Where a paper decays "when the
validation error stops improving", the recipe fixes the epochs at which that happened
in the paper's run and says so in ``note``.  Milestones may be fractions of the run
(``milestone_fractions``), which follow ``--epochs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .registry import list_models, model_info


@dataclass(frozen=True)
class Recipe:
    name: str
    citation: str
    opt: str                              # sgd | rmsprop | adam | adamw
    lr: float                             # at batch size `batch_size`
    batch_size: int
    epochs: int
    sched: str                            # step | multistep | cosine | poly | exp
    scale_lr: bool = False                # linear scaling: lr * batch / batch_size
    momentum: float = 0.9
    nesterov: bool = False
    wd: float = 0.0
    no_wd_on_norm_and_bias: bool = False
    step_size: float | None = None        # step: epochs between decays
    milestones: tuple = ()                # multistep: epochs
    milestone_fractions: tuple = ()       # multistep: fractions of --epochs (overrides milestones)
    gamma: float = 0.1                    # decay factor (step, multistep, exp per epoch)
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    rmsprop_alpha: float = 0.9
    rmsprop_eps: float = 1e-3
    image_size: int | None = None         # None: the model's input_size (models/registry.py)
    val_resize: int | None = None         # None: the model's eval_resize
    model_kwargs: dict = field(default_factory=dict)
    patience: int = 2                     # plateau: epochs without a better val top-1 before a decay
    min_lr: float = 0.0
    aa: str | None = None                 # autoaugment | trivialaugment | rand-m<M>-n<N>
    color_jitter: float | None = None     # brightness = contrast = saturation jitter
    pca_lighting: float | None = None     # AlexNet's PCA noise std
    photometric: bool = False             # GoogLeNet's (Howard's) photometric distortions
    scale_jitter: tuple | None = None     # (S_min, S_max): shorter side, then a random crop
    reprob: float = 0.0                   # RandomErasing probability
    mixup: float = 0.0
    cutmix: float = 0.0
    model_ema: bool = False
    model_ema_decay: float = 0.9998
    note: str = ""
    deviates: str = ""


_R = Recipe
RECIPES = {r.name: r for r in [
    _R("alexnet", "Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep CNNs (NIPS 2012), "
       "Sec. 5", opt="sgd", lr=0.01, batch_size=128, epochs=90, sched="plateau", gamma=0.1,
       patience=2, momentum=0.9, wd=5e-4, model_kwargs={"dropout": 0.5}, scale_jitter=(256, 256),
       pca_lighting=0.1,
       note="SGD momentum 0.9, wd 5e-4 on all weights, batch 128, lr 0.01 divided by 10 when the "
            "validation error stops improving (3 times in ~90 epochs), dropout 0.5 in the first two "
            "FC layers, random 224 crops of the 256 image + flips, PCA lighting (std 0.1); "
            "evaluation: center crop (and 10 crops)",
       deviates="the paper resizes to 256x256 (aspect ratio lost), here the shorter side to 256; "
                "'stops improving' is taken as 2 epochs without a better val top-1 (patience "
                "unstated); the paper initializes some biases to 1, minidl's init is He/zero"),
    _R("overfeat", "Sermanet et al., OverFeat (ICLR 2014), Sec. 3.1", opt="sgd", lr=5e-2,
       batch_size=128, epochs=90, sched="multistep", milestones=(30, 50, 60, 70, 80), gamma=0.5,
       momentum=0.6, wd=1e-5, model_kwargs={"dropout": 0.5}, scale_jitter=(256, 256),
       note="SGD momentum 0.6, wd 1e-5, lr 5e-2 halved at epochs 30, 50, 60, 70, 80, batch 128, "
            "dropout 0.5 in the FC layers, random 221 crops of the 256-shorter-side image + flips",
       deviates="the fast model's 231 crop is taken from the same 256 image; evaluation is one "
                "center crop, not the paper's multi-scale sliding window"),
    _R("vgg", "Simonyan & Zisserman, Very Deep Convolutional Networks (ICLR 2015), Sec. 3.1",
       opt="sgd", lr=0.01, batch_size=256, epochs=74, sched="multistep", milestones=(30, 50, 65),
       momentum=0.9, wd=5e-4, model_kwargs={"dropout": 0.5}, scale_jitter=(256, 512),
       pca_lighting=0.1,
       note="SGD momentum 0.9, wd 5e-4, batch 256, lr 0.01 divided by 10 on plateau (3 times in "
            "74 epochs), dropout 0.5, scale jittering S in [256, 512] + random 224 crops + flips "
            "+ AlexNet's RGB colour shift",
       deviates="the plateaus are fixed at epochs 30/50/65 (the paper's run); the paper "
                "initializes deeper nets from the trained 11-layer net; evaluation is a center "
                "crop, not dense multi-scale evaluation"),
    _R("googlenet", "Szegedy et al., Going Deeper with Convolutions (CVPR 2015), Sec. 6", opt="sgd",
       lr=0.01, batch_size=32, epochs=250, sched="step", step_size=8, gamma=0.96, momentum=0.9,
       wd=2e-4, model_kwargs={"dropout": 0.4}, photometric=True,
       note="asynchronous SGD momentum 0.9, lr x0.96 every 8 epochs, dropout 0.4, aux losses x0.3, "
            "crops of 8%-100% of the area with aspect ratio in [3/4, 4/3] (RandomResizedCrop), "
            "Howard's photometric distortions",
       deviates="the paper gives no initial lr, batch or weight decay: 0.01, 32 and 2e-4 from "
                "the BVLC Caffe solver (whose quick variant uses a poly schedule instead); "
                "synchronous SGD; evaluation: one center crop, not 144 crops"),
    _R("inception_v2", "Ioffe & Szegedy, Batch Normalization (ICML 2015), Sec. 4.2.1", opt="sgd",
       lr=0.045, batch_size=32, epochs=100, sched="exp", gamma=0.94 ** 3, momentum=0.9, wd=4e-5,
       note="BN-x30: lr 0.045 (30x Inception's 0.0015), L2 reduced 5x (2e-4 -> 4e-5), dropout "
            "removed, lr decay 6x faster than Inception's x0.96 per 8 epochs (~x0.83/epoch, "
            "taken here as 0.94^3)",
       deviates="the paper also shuffles more thoroughly and reduces the photometric distortions "
                "by an unstated amount: none are applied here"),
    _R("inception_v3", "Szegedy et al., Rethinking the Inception Architecture (CVPR 2016), Sec. 8",
       opt="rmsprop", lr=0.045, batch_size=32, epochs=100, sched="step", step_size=2, gamma=0.94,
       rmsprop_alpha=0.9, rmsprop_eps=1.0, wd=4e-5, label_smoothing=0.1, clip_grad_norm=2.0,
       note="RMSprop decay 0.9, eps 1.0, lr 0.045 x0.94 every 2 epochs, gradient clipping at 2.0, "
            "label smoothing 0.1 (batch 32 per replica, 50 replicas); aux loss x0.4",
       deviates="wd 4e-5 from TF-slim (not in the paper); 1 replica instead of 50 (the lr is not "
                "rescaled); TF-slim's colour distortions are not applied; the EMA the released "
                "model was evaluated with is not stated in the paper, so it is off"),
    _R("resnet", "He et al., Deep Residual Learning (CVPR 2016), Sec. 3.4; linear scaling: Goyal "
       "et al. 2017", opt="sgd", lr=0.1, batch_size=256, scale_lr=True, epochs=120,
       sched="multistep", milestones=(30, 60, 90), momentum=0.9, wd=1e-4,
       scale_jitter=(256, 480), pca_lighting=0.1,
       note="SGD momentum 0.9, wd 1e-4, lr 0.1 per 256 images, /10 on plateau, 600k iterations "
            "of 256 = ~120 epochs, shorter side in [256, 480] + random 224 crops + flips + "
            "AlexNet's colour augmentation, no dropout",
       deviates="the plateaus are fixed at 30/60/90 (torchvision's reference); evaluation is a "
                "center crop, not 10 crops / fully-convolutional multi-scale"),
    _R("resnext", "Xie et al., Aggregated Residual Transformations (CVPR 2017), Sec. 4; linear "
       "scaling: Goyal et al. 2017", opt="sgd", lr=0.1, batch_size=256, scale_lr=True, epochs=120,
       sched="multistep", milestones=(30, 60, 90), momentum=0.9, wd=1e-4,
       color_jitter=0.4, pca_lighting=0.1,
       note="ResNet's schedule: lr 0.1 per 256 images, /10 three times; fb.resnet.torch's "
            "augmentation: scale+aspect crops (RandomResizedCrop), colour jitter 0.4, PCA "
            "lighting 0.1, flips",
       deviates="fb.resnet.torch applies the three jitters in a random order on [0, 1] pixels "
                "as here, but with its own grayscale weights; plateaus fixed at 30/60/90"),
    _R("densenet", "Huang et al., Densely Connected Convolutional Networks (CVPR 2017), Sec. 4.2",
       opt="sgd", lr=0.1, batch_size=256, epochs=90, sched="multistep", milestones=(30, 60),
       momentum=0.9, nesterov=True, wd=1e-4,
       color_jitter=0.4, pca_lighting=0.1,
       note="ImageNet: batch 256, 90 epochs, lr 0.1 /10 at 30 and 60, wd 1e-4, Nesterov momentum "
            "0.9 without dampening; fb.resnet.torch's augmentation (colour jitter 0.4, lighting "
            "0.1, RandomResizedCrop, flips)",
       deviates="none known beyond fb.resnet.torch's grayscale weights"),
    _R("densenet_cifar", "Huang et al., Densely Connected Convolutional Networks (CVPR 2017), "
       "Sec. 4.2", opt="sgd", lr=0.1, batch_size=64, epochs=300, sched="multistep",
       milestone_fractions=(0.5, 0.75), momentum=0.9, nesterov=True, wd=1e-4, image_size=32,
       val_resize=32, model_kwargs={"drop_rate": 0.2},
       note="CIFAR/SVHN schedule: /10 at 50% and 75% of the epochs, dropout 0.2 without "
            "augmentation (C10/C100), batch 64, wd 1e-4",
       deviates="the '+' results of the paper use translation and mirroring, not set here"),
    _R("xception", "Chollet, Xception (CVPR 2017), Sec. 4.3", opt="sgd", lr=0.045, batch_size=32,
       epochs=100, sched="step", step_size=2, gamma=0.94, momentum=0.9, wd=1e-5,
       note="SGD momentum 0.9, lr 0.045 x0.94 every 2 epochs, wd 1e-5; the paper's dropout 0.5 "
            "before the classifier is not in the zoo's Xception; no batch size is given (32 "
            "assumed, not scaled)",
       deviates="60 NVIDIA K80 GPUs with synchronous SGD in the paper; dropout 0.5 missing (above)"),
    _R("mobilenet_v1", "Howard et al., MobileNets (2017), Sec. 4; hyperparameters of Inception-v3 "
       "as the paper says (RMSprop, asynchronous SGD)", opt="rmsprop", lr=0.045, batch_size=96,
       epochs=100, sched="step", step_size=2, gamma=0.94, rmsprop_alpha=0.9, rmsprop_eps=1.0,
       wd=4e-5, no_wd_on_norm_and_bias=True,
       note="the paper: 'RMSprop ... similar to Inception V3', 'very little or no weight decay' "
            "on depthwise filters, 'less regularization and data augmentation' (no label "
            "smoothing, limited crops)",
       deviates="the schedule and batch are Inception-v3's, which the paper only alludes to; "
                "weight decay is off for every 1-d parameter, not only the depthwise filters"),
    _R("mobilenet_v2", "Sandler et al., MobileNetV2 (CVPR 2018), Sec. 6.1", opt="rmsprop",
       lr=0.045, batch_size=96, epochs=150, sched="exp", gamma=0.98, rmsprop_alpha=0.9,
       rmsprop_eps=1e-3, wd=4e-5, model_kwargs={"dropout": 0.2},
       note="RMSprop decay and momentum 0.9, wd 4e-5, lr 0.045 x0.98 per epoch, batch 96 "
            "(16 GPUs)",
       deviates="the paper states no epochs (150 assumed) or augmentation (Inception-style crops "
                "here); dropout 0.2 from the TF-slim model"),
    _R("efficientnet", "Tan & Le, EfficientNet (ICML 2019), Sec. 5.2; lr per 256 images from the "
       "reference TPU implementation", opt="rmsprop", lr=0.016, batch_size=256, scale_lr=True,
       epochs=350, sched="step", step_size=2.4, gamma=0.97, rmsprop_alpha=0.9, rmsprop_eps=1e-3,
       wd=1e-5, label_smoothing=0.1, warmup_epochs=5, no_wd_on_norm_and_bias=True,
       model_kwargs={"stochastic_depth_prob": 0.2}, aa="autoaugment", model_ema=True,
       model_ema_decay=0.9999,
       note="RMSprop decay 0.9 momentum 0.9, lr 0.256 at batch 4096 (0.016 per 256) x0.97 every "
            "2.4 epochs, 5 warmup epochs, wd 1e-5, label smoothing 0.1, dropout 0.2 (B0) to 0.5 "
            "(B7), stochastic depth (survival 0.8), AutoAugment (ImageNet policy), an EMA of "
            "the weights with decay 0.9999; image size per variant",
       deviates="dropout stays at 0.2 for every variant (the model default); AutoAugment uses "
                "torchvision's magnitude bins; 'best' is chosen on the raw weights' top-1, the "
                "EMA's is logged beside it; TPU batch-norm momentum 0.99 is minidl's 0.9"),
    _R("lenet5", "LeCun et al., Gradient-Based Learning Applied to Document Recognition (1998); "
       "modern optimizer settings for a short CPU run", opt="sgd", lr=0.1, batch_size=128,
       scale_lr=True, epochs=3, sched="cosine", momentum=0.9, nesterov=True, wd=5e-4,
       no_wd_on_norm_and_bias=True, warmup_epochs=0.2, label_smoothing=0.0,
       note="the 1998 paper trains 20 epochs with a stochastic diagonal Levenberg-Marquardt "
            "method; this recipe is a few-epoch SGD+cosine run that reaches ~90%+ on "
            "Fashion-MNIST on 2 CPU cores",
       deviates="the optimizer and schedule are modern (above); distortions of the paper's "
                "augmented run are not applied"),
]}

def list_recipes():
    return sorted(RECIPES)


def sized_for(recipe, info):
    """``recipe`` with the image sizes of the registered model ``info`` where it fixes none."""
    return replace(recipe, image_size=recipe.image_size or info.input_size,
                   val_resize=recipe.val_resize or info.eval_resize)


def recipe_for_model(model_name):
    """The recipe a registered model names, at the model's image sizes."""
    try:
        info = model_info(model_name)
    except ValueError as e:
        raise ValueError(f"recipes: no recipe for model {model_name!r}: {e}") from None
    if info.recipe not in RECIPES:
        raise ValueError(f"recipes: model {model_name!r} names the recipe {info.recipe!r}; expected "
                         f"one of {list_recipes()}")
    return sized_for(RECIPES[info.recipe], info)


def get_recipe(name, model_name=None):
    """``name``: a recipe name, or "auto" for the recipe ``model_name`` registers.  With a
    registered ``model_name``, the recipe comes at that model's image sizes."""
    if name == "auto":
        if model_name is None:
            raise ValueError("recipes: --recipe auto needs --model")
        return recipe_for_model(model_name)
    if name not in RECIPES:
        raise ValueError(f"recipes: unknown recipe {name!r}; expected 'auto' or one of {list_recipes()}")
    if model_name in list_models():
        return sized_for(RECIPES[name], model_info(model_name))
    return RECIPES[name]


def scaled_lr(recipe, batch_size):
    """The recipe's learning rate at ``batch_size`` (linear scaling where the recipe says)."""
    if batch_size <= 0:
        raise ValueError(f"recipes: expected a positive batch size, got {batch_size!r}")
    return recipe.lr * batch_size / recipe.batch_size if recipe.scale_lr else recipe.lr


def resolve(recipe, batch_size=None, epochs=None):
    """Training options (the names of minidl-train's flags) from a recipe, at the given
    batch size and number of epochs (defaults: the recipe's)."""
    batch_size = recipe.batch_size if batch_size is None else batch_size
    epochs = recipe.epochs if epochs is None else epochs
    milestones = list(recipe.milestones)
    if recipe.milestone_fractions:
        milestones = [round(f * epochs) for f in recipe.milestone_fractions]
    return {"opt": recipe.opt, "lr": scaled_lr(recipe, batch_size), "batch_size": batch_size,
            "epochs": epochs, "momentum": recipe.momentum, "nesterov": recipe.nesterov,
            "wd": recipe.wd, "no_wd_on_norm_and_bias": recipe.no_wd_on_norm_and_bias,
            "sched": recipe.sched, "step_size": recipe.step_size, "milestones": milestones,
            "gamma": recipe.gamma, "warmup_epochs": recipe.warmup_epochs,
            "label_smoothing": recipe.label_smoothing, "clip_grad_norm": recipe.clip_grad_norm,
            "rmsprop_alpha": recipe.rmsprop_alpha, "rmsprop_eps": recipe.rmsprop_eps,
            "image_size": recipe.image_size, "val_resize": recipe.val_resize,
            "model_kwargs": dict(recipe.model_kwargs), "patience": recipe.patience,
            "min_lr": recipe.min_lr, "aa": recipe.aa, "color_jitter": recipe.color_jitter,
            "pca_lighting": recipe.pca_lighting, "photometric": recipe.photometric,
            "scale_jitter": list(recipe.scale_jitter) if recipe.scale_jitter else None,
            "reprob": recipe.reprob, "mixup": recipe.mixup, "cutmix": recipe.cutmix,
            "model_ema": recipe.model_ema, "model_ema_decay": recipe.model_ema_decay}
