"""Training recipes and the registry's per-model metadata: every registered model names a
recipe that exists, recipes resolve to training options, linear lr scaling, and the
tools take image sizes and the aux-loss weight from the registry."""
import inspect
import os

import numpy as np

import pytest

import minidl.models as models
from minidl.models import recipes
from minidl.tools import train


def test_recipes_resolve_for_every_registered_model():
    cheap = {}
    for name in models.list_models():
        recipe = recipes.recipe_for_model(name)
        options = recipes.resolve(recipe, batch_size=64)
        assert options["lr"] > 0 and options["epochs"] > 0, name
        cheap.setdefault(recipe.name, name)
        info = models.model_info(name)
        if info.params < 30_000_000 and cheap[recipe.name] == name:  # one build per family
            models.create(name, num_classes=10, **options["model_kwargs"])
    for name, cls in (("vgg16", models.vgg.VGG), ("overfeat_fast", models.overfeat.OverFeat)):
        kwargs = recipes.resolve(recipes.recipe_for_model(name))["model_kwargs"]
        assert set(kwargs) <= set(inspect.signature(cls.__init__).parameters), name
    with pytest.raises(ValueError, match="no recipe for model"):
        recipes.recipe_for_model("transformer")


def test_every_registered_model_names_an_existing_recipe_and_its_eval_sizes():
    for name in models.list_models():
        info = models.model_info(name)
        assert info.recipe in recipes.RECIPES, (name, info.recipe)
        assert info.eval_resize >= info.input_size and 0 < info.crop_pct <= 1, name
        recipe = recipes.recipe_for_model(name)
        assert (recipe.image_size, recipe.val_resize) == (info.input_size, info.eval_resize), name
    assert models.model_info("efficientnet_b3").eval_resize == 342
    assert models.model_info("resnet50").crop_pct == 0.875
    assert {n: models.model_info(n).aux_weight for n in ("googlenet", "inception_v3", "resnet50")} == \
        {"googlenet": 0.3, "inception_v3": 0.4, "resnet50": None}
    # a recipe for other data keeps its own resolution
    assert recipes.get_recipe("densenet_cifar", "densenet121").image_size == 32
    with pytest.raises(ValueError, match="eval_resize >= input_size"):
        models.register_model(params=1, gmacs=0.0, input_size=224, recipe="resnet", eval_resize=200,
                              name="too_small_resize")(lambda num_classes=1000: None)


def test_train_takes_sizes_and_aux_weight_from_the_registry():
    cfg = train.resolve_config(train.parse_args(["--model", "inception_v3", "--dataset", "imagenet",
                                                 "--recipe", "none"]))
    assert (cfg["image_size"], cfg["val_resize"]) == (299, 342)
    cfg = train.resolve_config(train.parse_args(["--model", "efficientnet_b4", "--dataset", "imagenet"]))
    assert (cfg["image_size"], cfg["val_resize"], cfg["recipe"]) == (380, 434, "efficientnet")
    cfg = train.resolve_config(train.parse_args(["--model", "googlenet", "--dataset", "fashion-mnist"]))
    assert (cfg["image_size"], cfg["val_resize"]) == (28, None)


def test_linear_lr_scaling():
    resnet = recipes.get_recipe("auto", "resnet50")
    assert recipes.scaled_lr(resnet, 256) == pytest.approx(0.1)
    assert recipes.scaled_lr(resnet, 1024) == pytest.approx(0.4)
    assert recipes.scaled_lr(resnet, 32) == pytest.approx(0.0125)
    eff = recipes.get_recipe("auto", "efficientnet_b3")
    assert recipes.scaled_lr(eff, 4096) == pytest.approx(0.256)
    assert eff.image_size == 300 and eff.label_smoothing == 0.1 and eff.warmup_epochs > 0
    alex = recipes.get_recipe("alexnet")
    assert recipes.scaled_lr(alex, 512) == 0.01  # the paper does not scale
    assert recipes.resolve(recipes.get_recipe("densenet_cifar"), epochs=40)["milestones"] == [20, 30]
    inc = recipes.resolve(recipes.get_recipe("auto", "inception_v3"))
    assert (inc["opt"], inc["rmsprop_eps"], inc["gamma"], inc["step_size"]) == ("rmsprop", 1.0, 0.94, 2)

    # flags given override the recipe; the recipe's lr follows --batch-size
    cfg = train.resolve_config(train.parse_args(["--model", "resnet18", "--batch-size", "512"]))
    assert cfg["lr"] == pytest.approx(0.2) and cfg["recipe"] == "resnet" and cfg["wd"] == 1e-4
    cfg = train.resolve_config(train.parse_args(["--model", "resnet18", "--batch-size", "512", "--lr", "0.3"]))
    assert cfg["lr"] == 0.3 and cfg["milestones"] == [30, 60, 90]


def _recipe_models():
    """One registered model per recipe, the one with the fewest MACs."""
    chosen = {}
    for name in models.list_models():
        info = models.model_info(name)
        if info.recipe not in chosen or info.gmacs < models.model_info(chosen[info.recipe]).gmacs:
            chosen[info.recipe] = name
    return sorted(chosen.items())


@pytest.mark.parametrize("recipe_name,model_name", _recipe_models())
def test_every_recipe_pipeline_runs_one_step(recipe_name, model_name, tmp_path, capsys):
    """The recipe's whole pipeline (augmentations, optimizer, schedule, EMA, model options)
    on a tiny RGB image folder: one training step, at the smallest input the model takes."""
    from PIL import Image
    from minidl.tools import recipe_parts
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            os.makedirs(tmp_path / "data" / split / cls)
            for i in range(2):
                pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "data" / split / cls / f"{i}.png")
    info = models.model_info(model_name)
    size = info.test_size or 64
    argv = ["--model", model_name, "--recipe", recipe_name, "--dataset", "folder", "--data",
            str(tmp_path / "data"), "--batch-size", "2", "--image-size", str(size), "--val-resize",
            str(size), "--max-steps", "1", "--output", str(tmp_path / "run")]
    cfg = train.resolve_config(train.parse_args(argv))
    recipe = recipes.get_recipe(recipe_name, model_name)
    if recipe.scale_jitter:  # the jitter range scaled to the tiny input, as the paper's to 224
        cfg["scale_jitter"] = [size, size + size * (recipe.scale_jitter[1] - recipe.scale_jitter[0]) // 224]
    if model_name == "inception_v3":  # its auxiliary head needs the full 299 input
        cfg["model_kwargs"] = dict(cfg["model_kwargs"], aux_logits=False)
    trainer = train.Trainer(cfg)
    for key in ("aa", "pca_lighting", "photometric", "color_jitter"):
        assert bool(cfg[key]) == bool(getattr(recipe, key)), key
    if any(cfg[k] for k in recipe_parts.RGB_AUGMENTATIONS):
        assert recipe_parts.train_transform(cfg) is not None
    assert (trainer.ema is not None) == recipe.model_ema
    assert trainer.run() == 0 and len(trainer.history) == 1 and np.isfinite(trainer.history[0][1])
    assert recipe.note and recipe.deviates, recipe_name


def test_recipe_rgb_augmentations_are_left_out_on_idx_sets(capsys):
    cfg = train.resolve_config(train.parse_args(["--model", "resnet18", "--dataset", "fashion-mnist"]))
    assert cfg["scale_jitter"] is None and cfg["pca_lighting"] is None
    assert "--pca-lighting, --scale-jitter need RGB images" in capsys.readouterr().err
    cfg = train.resolve_config(train.parse_args(["--model", "alexnet", "--dataset", "imagenet"]))
    assert (cfg["sched"], cfg["scale_jitter"], cfg["pca_lighting"]) == ("plateau", [256, 256], 0.1)
    cfg = train.resolve_config(train.parse_args(["--model", "efficientnet_b0", "--dataset", "imagenet"]))
    assert (cfg["aa"], cfg["model_ema"], cfg["model_ema_decay"]) == ("autoaugment", True, 0.9999)
