"""minidl-train (``python -m minidl.train``): train a model of the zoo.

    minidl-train                                   # LeNet-5 (BN, width 2) on Fashion-MNIST, CPU
    minidl-train --model resnet50 --dataset imagenet --data /data/imagenet --recipe auto \\
        --batch-size 256 --workers 8 --device cuda --output runs/r50
    minidl-train --resume runs/r50/last.json       # continue exactly where it stopped

Options come from three layers: built-in defaults < the recipe (``--recipe``, default
``auto``: the paper recipe of the model's family, see models/recipes.py) < the
flags given.  ``--lr`` given explicitly is used as is; the recipe's lr is scaled
linearly with ``--batch-size`` where the paper does.  LR schedules count in epochs and
are evaluated at fractional epochs every step; warmup precedes the schedule.

Writes into ``--output``: ``last.json`` / ``best.json`` checkpoints (weights in
safetensors beside them; see minidl/tools/checkpoint.py), ``log.jsonl`` (one record per
epoch), ``curves.png`` (with matplotlib) and ``results.json``.  A folder that holds a
previous run is refused unless ``--resume`` continues it or ``--overwrite`` replaces it;
temp files and weights that a killed run left behind are removed at the next start.
``last`` is saved after every epoch's steps (before validation) and after validation;
``best`` only on finite metrics.  Ctrl-C or SIGTERM saves ``last`` after the current
step and exits with status 128 + signal number; a second Ctrl-C aborts at once.
``--resume`` restores weights, optimizer, schedule, RNG states and the position in the
epoch, so the continued run is bit-identical on the CPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import textwrap
import time

import numpy as np

import minidl
import minidl.functional as F
from minidl import optim
from minidl import io as mio
from minidl.tools.amp_training import AMP_CHOICES, MAX_NONFINITE_STEPS, SCALER_KEY, AmpTraining, default_amp
from minidl.tools import recipe_parts
from minidl.tools.checkpoint import (CheckpointError, load_checkpoint, remove_stale_files, save_checkpoint,
                                     weights_path)
from minidl.tools.run_folder import describe_checkpoint, open_log, prepare_run_folder
from minidl.tools.run_logs import NoStepLog, StepLog, draw_curves, utc_now
from minidl.tools.step_metrics import PendingSteps, StepRecord
from minidl.tools.cli import (DEVICES, device, non_negative_float, non_negative_int, percent,
                              positive_float, positive_int, show_defaults, unit_fraction)
from minidl.tools.distributed_run import Ranks
from minidl.tools.common import (DATASETS, InputSpec, UsageError, build_dataset, build_model,
                                 dataset_channels, eval_sizes, evaluate, format_table, import_zoo,
                                 registered_model)

DEFAULTS = dict(model="lenet5_bn_w2", dataset="fashion-mnist", data=None, device="cpu", epochs=10,
                batch_size=128, opt="sgd", lr=0.1, momentum=0.9, nesterov=False, wd=1e-4,
                no_wd_on_norm_and_bias=False, sched="cosine", step_size=30, milestones=[30, 60, 90],
                gamma=0.1, power=1.0, warmup_epochs=0.0, label_smoothing=0.0, clip_grad_norm=None,
                rmsprop_alpha=0.9, rmsprop_eps=1e-3, image_size=None, val_resize=None, workers=0,
                seed=0, output="runs/minidl", recipe="auto", model_kwargs={}, skip_nonfinite=False,
                max_steps=None, limit_train_batches=None, limit_val_batches=None,
                checkpoint_minutes=30.0, aux_weight=None, amp=None, sync_bn=False, dtype="float32",
                world_size=1, log_interval=10, tensorboard=None, **recipe_parts.FLAG_DEFAULTS)
# What flags given with --resume do to the checkpoint's settings (stated in --help):
# rebuild the schedule / set the restored optimizer's hyperparameters,
RESUME_SCHEDULE_KEYS = {"lr", "sched", "epochs", "step_size", "milestones", "gamma", "power", "warmup_epochs",
                        "min_lr", "patience"}
RESUME_OPTIMIZER_KEYS = {"momentum", "nesterov", "wd", "rmsprop_alpha", "rmsprop_eps"}
# take effect from the next step, change only how the run is carried out,
RESUME_STEP_KEYS = {"label_smoothing", "clip_grad_norm", "aux_weight", "skip_nonfinite", "mixup", "cutmix",
                    "model_ema_decay", "grad_accum_steps"}
RUNTIME_KEYS = {"device", "workers", "output", "max_steps", "limit_val_batches", "checkpoint_minutes",
                "data", "overwrite", "log_interval", "tensorboard"}
# or cannot change (the model, its data, the batches and the optimizer's buffers).
RESUME_FIXED_KEYS = {"model", "model_kwargs", "dataset", "batch_size", "opt", "no_wd_on_norm_and_bias",
                     "recipe", "seed", "image_size", "val_resize", "limit_train_batches", "weights", "amp",
                     "sync_bn", "dtype"} | recipe_parts.RESUME_FIXED


def _flags(keys):
    return ", ".join("--" + key.replace("_", "-") for key in sorted(keys))


RESUME_HELP = (
    "With --resume the run's settings come from the checkpoint. Flags given with it are applied to "
    f"the restored optimizer and schedule: {_flags(RESUME_SCHEDULE_KEYS | RESUME_OPTIMIZER_KEYS)} (the "
    "schedule is rebuilt from the new settings and continues at the checkpoint's fractional epoch; "
    f"weights, momentum buffers and the position are kept); {_flags(RESUME_STEP_KEYS)} take effect from "
    f"the next step; {_flags(RUNTIME_KEYS)} change only how the run is carried out. "
    f"{_flags(RESUME_FIXED_KEYS)} cannot change on --resume. A note lists every setting that changes.")


# ------------------------------------------------------------------ arguments
def parse_args(argv=None):
    """Only the flags actually given end up in the namespace (defaults are SUPPRESSed),
    so the recipe can fill in the rest."""
    p = argparse.ArgumentParser(prog="minidl-train", description=__doc__.split("\n\n")[0],
                                argument_default=argparse.SUPPRESS,
                                epilog=textwrap.fill(RESUME_HELP, 88, break_on_hyphens=False),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--model", help=f"registered model (default {DEFAULTS['model']}; python -m minidl.models)")
    a("--dataset", choices=DATASETS, help="default fashion-mnist")
    a("--data", help="dataset root (fashion-mnist default: /usr/share/datasets/fashion-mnist)")
    a("--device", type=device, choices=DEVICES,
      help="default cpu (emu: our CUDA kernels run on the CPU, for debugging)")
    a("--epochs", type=positive_int)
    a("--batch-size", type=positive_int)
    a("--opt", choices=("sgd", "rmsprop", "adam", "adamw"))
    a("--lr", type=positive_float, help="learning rate, used as given (the recipe's is scaled by batch size)")
    a("--momentum", type=float)
    a("--nesterov", action=argparse.BooleanOptionalAction)
    a("--wd", type=non_negative_float, help="weight decay")
    a("--no-wd-on-norm-and-bias", dest="no_wd_on_norm_and_bias", action="store_const", const=True,
      help="no weight decay on batch-norm parameters and biases")
    a("--sched", choices=("step", "multistep", "cosine", "poly", "exp", "plateau"),
      help="plateau: lr x --gamma after --patience epochs without a better val top-1")
    a("--step-size", type=positive_float, help="step: epochs between decays")
    a("--milestones", type=lambda s: [float(v) for v in s.split(",")], help="multistep: e.g. 30,60,90")
    a("--gamma", type=positive_float, help="step/multistep/exp decay factor (exp: per epoch)")
    a("--power", type=non_negative_float, help="poly: exponent")
    a("--warmup-epochs", type=non_negative_float, help="linear warmup before the schedule (0: none)")
    a("--label-smoothing", type=unit_fraction)
    a("--clip-grad-norm", type=positive_float)
    a("--rmsprop-alpha", type=float)
    a("--rmsprop-eps", type=float)
    a("--image-size", type=positive_int, help="input size (default: 28 on the IDX datasets, else the model's)")
    a("--val-resize", type=positive_int, help="shorter side before the center crop (default: the model's)")
    a("--model-kwargs", type=json.loads, help='JSON options for the model, e.g. \'{"dropout": 0.3}\'')
    a("--aux-weight", type=non_negative_float,
      help="weight of auxiliary-head losses (default: the model's, as registered: GoogLeNet 0.3, "
           "Inception-v3 0.4)")
    a("--workers", type=non_negative_int)
    a("--seed", type=int)
    a("--output", help="run folder (default runs/minidl; with --resume the checkpoint's folder)")
    a("--overwrite", action="store_true", help="replace the run that --output holds")
    a("--resume", help="checkpoint to continue (a run folder or its last.json)")
    a("--weights", help="initial weights (.safetensors or a checkpoint), e.g. with --evaluate")
    a("--evaluate", action="store_true", help="only evaluate (--resume or --weights) and exit")
    a("--recipe", help="'auto' (the model family's paper recipe), 'none', or a recipe name")
    a("--amp", choices=AMP_CHOICES, help="mixed precision (default off on cpu/emu; on a GPU bf16 where "
      f"supported, else fp16); a non-finite loss skips the step, {MAX_NONFINITE_STEPS} in a row stop")
    a("--skip-nonfinite", action="store_true", help="skip steps whose loss is NaN/inf instead of stopping")
    a("--max-steps", type=positive_int, help="stop (with a checkpoint) after this many steps in total")
    a("--limit-train-batches", type=positive_int, help="use only the first N batches of each epoch")
    a("--limit-val-batches", type=positive_int)
    a("--sync-bn", dest="sync_bn", action="store_const", const=True,
      help="under mpiexec: batch-norm statistics over the global batch (SyncBatchNorm)")
    a("--dtype", choices=("float32", "float64"), help="parameters and inputs (default float32; float64 "
                                                       "for exact comparisons)")
    a("--checkpoint-minutes", type=non_negative_float,
      help="also save 'last' this often within an epoch (default 30; 0: after every step)")
    recipe_parts.add_arguments(a)
    a("--log-interval", type=positive_int, help="every N steps: read the queued step losses from the device "
      "(one transfer) and write a row of steps.csv")
    a("--tensorboard", metavar="DIR", help="also write TensorBoard event files to DIR (needs tensorboardX)")
    show_defaults(p, DEFAULTS, from_recipe=recipe_keys())
    return vars(p.parse_args(argv))


def recipe_keys():
    """The settings a training recipe can set (shown as such in --help)."""
    from dataclasses import fields

    from minidl.models.recipes import Recipe
    return {f.name for f in fields(Recipe)}


def resolve_config(given, saved=None, world_size=1):
    """defaults < recipe (or the checkpoint's settings) < flags given."""
    cfg = dict(DEFAULTS)
    if saved is not None:
        if "weights" in given:
            raise UsageError("--weights cannot be combined with --resume (the checkpoint holds the weights)")
        for key in sorted(RESUME_FIXED_KEYS & set(given)):
            if given[key] != saved.get(key):
                raise UsageError(f"{_flags([key])} cannot change on --resume (the checkpoint's is "
                                 f"{saved.get(key)!r}); start a new run to change it")
        cfg.update(saved)
        cfg["max_steps"] = None  # a limit of the interrupted process, not of the run
        cfg.update(given)  # applied by Trainer.apply_resume_changes
        cfg["amp"] = cfg["amp"] or "off"  # a checkpoint from before --amp
        return cfg
    model = given.get("model", cfg["model"])
    recipe_name = given.get("recipe", cfg["recipe"])
    recipe = None
    if recipe_name != "none":
        from minidl.models import recipes
        import_zoo()
        try:
            recipe = recipes.get_recipe(recipe_name, model)
        except ValueError as e:
            if recipe_name != "auto" or "recipe" in given:
                raise UsageError(str(e)) from None
            recipe = None  # an unregistered model: build_model reports it
        if recipe is not None:
            cfg.update(recipes.resolve(recipe, given.get("batch_size"), given.get("epochs")))
            if world_size > 1:  # --batch-size is per process; the LR follows the global batch
                cfg["lr"] = recipes.scaled_lr(recipe, cfg["batch_size"] * world_size)
    cfg.update(given)
    recipe_parts.fit_recipe_to_dataset(cfg, given)
    if recipe_name != "none" and recipe is not None:
        cfg["recipe"] = recipe.name  # "auto" resolved
    cfg["amp"] = cfg["amp"] or default_amp(cfg["device"])
    if cfg["dataset"] in ("fashion-mnist", "mnist"):
        # the models' image sizes are ImageNet's; 28x28 data stays 28x28 unless asked
        cfg["image_size"] = given.get("image_size", 28)
        cfg["val_resize"] = given.get("val_resize")
    else:
        cfg["image_size"], cfg["val_resize"] = eval_sizes(model, cfg["image_size"], cfg["val_resize"])
    return cfg


# ------------------------------------------------------------------ optimizer and schedule
def parameter_groups(model, wd, no_wd_on_norm_and_bias):
    if not no_wd_on_norm_and_bias:
        return [{"params": list(model.parameters()), "weight_decay": wd}]
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # biases and norm scales/shifts are 1-d
    return [g for g in ({"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0})
            if g["params"]]


def build_optimizer(cfg, model):
    groups = parameter_groups(model, cfg["wd"], cfg["no_wd_on_norm_and_bias"])
    name, lr = cfg["opt"], cfg["lr"]
    if name == "sgd":
        return optim.SGD(groups, lr=lr, momentum=cfg["momentum"], nesterov=bool(cfg["nesterov"]))
    if name == "rmsprop":
        return optim.RMSprop(groups, lr=lr, alpha=cfg["rmsprop_alpha"], eps=cfg["rmsprop_eps"],
                             momentum=cfg["momentum"])
    if name == "adam":
        return optim.Adam(groups, lr=lr)
    return optim.AdamW(groups, lr=lr)


def build_scheduler(cfg, optimizer):
    """A closed-form schedule in epochs (fractional epochs allowed), after the warmup."""
    s = optim.lr_scheduler
    warmup, epochs, name = float(cfg["warmup_epochs"] or 0), cfg["epochs"], cfg["sched"]
    if name == "step":
        sched = s.StepLR(optimizer, step_size=cfg["step_size"], gamma=cfg["gamma"])
    elif name == "multistep":
        sched = s.MultiStepLR(optimizer, milestones=sorted(cfg["milestones"]), gamma=cfg["gamma"])
    elif name == "cosine":
        sched = s.CosineAnnealingLR(optimizer, T_max=max(epochs - warmup, 1e-9), eta_min=cfg["min_lr"])
    elif name == "poly":
        sched = s.PolyLR(optimizer, total_steps=max(epochs - warmup, 1e-9), power=cfg["power"])
    elif name == "plateau":
        sched = s.ReduceLROnPlateau(optimizer, "max", cfg["gamma"], cfg["patience"], min_lr=cfg["min_lr"])
    else:
        sched = s.ExponentialLR(optimizer, gamma=cfg["gamma"])
    if warmup > 0:
        sched = s.LinearWarmup(optimizer, warmup, after=sched, start_factor=0.01)
    return sched


# ------------------------------------------------------------------ data
def epoch_batches(loader, epoch, start_batch, workers):
    """An iterable over ``loader``'s batches of ``epoch`` from ``start_batch`` on."""
    from minidl.data import DataLoader, Subset
    loader.set_epoch(epoch)
    if start_batch == 0:
        return loader
    rest = loader.order(epoch)[start_batch * loader.batch_size:]
    view = DataLoader(Subset(loader.dataset, rest), batch_size=loader.batch_size,
                      shuffle=False, num_workers=workers, seed=loader.seed, drop_last=loader.drop_last)
    view.set_epoch(epoch)
    return view


# ------------------------------------------------------------------ signals
class StopFlag:
    """Ctrl-C / SIGTERM ask for a checkpoint at the next step boundary; a second Ctrl-C
    raises KeyboardInterrupt at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nminidl-train: {signal.Signals(signum).name} received: saving a checkpoint after "
              "this step (Ctrl-C again to abort at once)", file=sys.stderr, flush=True)

    def __call__(self):
        return self.signum is not None


class NonFiniteLoss(RuntimeError):
    pass


# ------------------------------------------------------------------ the run
class Trainer:
    def __init__(self, cfg, checkpoint=None, ranks=None):
        self.cfg = cfg
        self.ranks = ranks if ranks is not None else Ranks()
        self.out = cfg["output"]
        self.step_log = NoStepLog()  # run() opens the real one; a step outside run() logs nothing
        os.makedirs(self.out, exist_ok=True)
        minidl.manual_seed(cfg["seed"])
        np.random.seed(cfg["seed"])
        from minidl.data import DataLoader
        self.train_set, spec = build_dataset(cfg["dataset"], cfg["data"], True, cfg["image_size"],
                                             cfg["val_resize"])
        classes = self.train_set.classes if cfg["dataset"] in ("imagenet", "folder") else None
        # a folder without val/ has no held-out images of its own: part of train is held out
        no_val = cfg["dataset"] == "folder" and not os.path.isdir(os.path.join(cfg["data"], "val"))
        self.val_set = None if no_val else build_dataset(cfg["dataset"], cfg["data"], False, cfg["image_size"],
                                                         cfg["val_resize"], classes=classes)[0]
        channels = dataset_channels(self.train_set)
        self.train_set.transform = recipe_parts.train_transform(cfg) or self.train_set.transform
        self.test_set = None  # the dataset's own test set, when validation holds out part of train
        split = recipe_parts.held_out_split(cfg, self.train_set, lambda: build_dataset(
            cfg["dataset"], cfg["data"], True, cfg["image_size"], cfg["val_resize"], augment=False)[0],
            required=no_val)
        if split is not None:
            self.test_set, (self.train_set, self.val_set) = self.val_set, split
        self.check_validation_set(channels)
        self.model, in_channels = build_model(cfg["model"], len(self.train_set.classes), channels,
                                              cfg["model_kwargs"])
        if cfg["pretrained"] and checkpoint is None:
            recipe_parts.load_initial_weights(self.model, cfg, len(self.train_set.classes))
        self.mixer = recipe_parts.batch_mixer(cfg, len(self.train_set.classes))
        self.spec = InputSpec(spec.mean, spec.std, in_channels // channels if in_channels != channels else 1)
        self.model.to(cfg["device"], dtype=cfg["dtype"])
        self.ema = recipe_parts.ModelEma(self.model, cfg["model_ema_decay"]) if cfg["model_ema"] else None
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        train_sampler = self.ranks.sampler(len(self.train_set), cfg["seed"], train=True)
        self.train_loader = DataLoader(self.train_set, batch_size=cfg["batch_size"], shuffle=train_sampler is None,
                                       num_workers=cfg["workers"], seed=cfg["seed"], drop_last=True,
                                       sampler=train_sampler)
        self.val_loader = DataLoader(self.val_set, batch_size=max(cfg["batch_size"], 100),
                                     num_workers=cfg["workers"],
                                     sampler=self.ranks.sampler(len(self.val_set), cfg["seed"], train=False))
        self.test_loader = None if self.test_set is None else DataLoader(
            self.test_set, batch_size=max(cfg["batch_size"], 100), num_workers=cfg["workers"],
            sampler=self.ranks.sampler(len(self.test_set), cfg["seed"], train=False))
        self.steps_per_epoch = len(self.train_loader)
        if cfg["limit_train_batches"]:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg["limit_train_batches"])
        if self.steps_per_epoch == 0:
            raise UsageError(f"the training set has {len(self.train_set)} images, fewer than one batch "
                             f"of {cfg['batch_size']}; lower --batch-size")
        self.aux_weight = cfg["aux_weight"] if cfg["aux_weight"] is not None else \
            registered_model(cfg["model"]).aux_weight
        self.state = {"epoch": 0, "batch": 0, "step": 0, "loss_sum": 0.0, "loss_count": 0,
                      "best_top1": None, "skipped_steps": 0}
        self.resumed = checkpoint is not None
        self.amp = AmpTraining(cfg["amp"])
        self.saved = None  # (manifest path, progress) of the latest complete 'last' checkpoint
        if checkpoint is not None:
            wanted = [{k: v for k, v in g.items() if k not in ("params", "lr", "initial_lr")}
                      for g in self.optimizer.param_groups]
            checkpoint.restore(self.model, self.optimizer, self.scheduler)
            if self.ema is not None:
                self.ema.load_state_dict(checkpoint.ema or {})
            self.state.update(checkpoint.train_state["progress"])
            self.state["batch"] = self.ranks.resume_position(
                self.state, checkpoint.train_state["config"].get("world_size", 1), cfg["batch_size"],
                self.steps_per_epoch)
            self.amp.load_state_dict(checkpoint.train_state.get(SCALER_KEY))
            self.saved = (checkpoint.path, dict(self.state))
            self.apply_resume_changes(checkpoint.train_state["config"], wanted)
        cfg["world_size"] = self.ranks.world
        self.net = self.model  # the network itself; self.model may wrap it for data parallelism
        self.model = self.ranks.wrap(self.model, cfg["sync_bn"])
        self.stop = StopFlag()
        self.stop_requested = False
        self.last_save = time.monotonic()
        self.history = []  # (step, loss) of every step this process ran
        # one process, no AMP skips, no --skip-nonfinite: nothing needs the loss before the
        # next log point, so the steps queue on the device without a sync (step_metrics.py)
        self.pending = PendingSteps() if self.ranks.world == 1 and not cfg["skip_nonfinite"] else None

    def check_validation_set(self, channels):
        """An empty or undecodable validation set is a start-up error, not one after an epoch."""
        if len(self.val_set) == 0:
            raise UsageError(f"the validation set of --dataset {self.cfg['dataset']} is empty; a run "
                             "needs one to report its metrics and choose 'best'")
        try:
            val_channels = dataset_channels(self.val_set)
        except UsageError as e:
            raise UsageError(f"the validation set: {e}") from None
        if val_channels != channels:
            raise UsageError(f"the validation images have {val_channels} channels, the training "
                             f"images {channels}")

    def apply_resume_changes(self, saved, wanted_groups):
        """Apply the settings given with --resume that differ from the checkpoint's: the
        optimizer gets the hyperparameters of ``wanted_groups`` (built from the new
        settings) and the schedule is rebuilt, evaluated at the current fractional epoch."""
        cfg, st = self.cfg, self.state
        changed = sorted(k for k in RESUME_SCHEDULE_KEYS | RESUME_OPTIMIZER_KEYS | RESUME_STEP_KEYS
                         if cfg[k] != saved.get(k))
        if not changed:
            return
        if set(changed) & (RESUME_SCHEDULE_KEYS | RESUME_OPTIMIZER_KEYS):
            lr_before = self.optimizer.param_groups[0]["lr"]
            for group, wanted in zip(self.optimizer.param_groups, wanted_groups):
                group.update(wanted)
                group["initial_lr"] = cfg["lr"]
            self.scheduler = build_scheduler(cfg, self.optimizer)
            self.scheduler.step(st["epoch"] + st["batch"] / self.steps_per_epoch)
            if "epochs" in changed:
                print(f"minidl-train: note: the {cfg['sched']} schedule is re-planned over {cfg['epochs']} "
                      f"epochs: the lr goes from {lr_before:.4g} to "
                      f"{self.optimizer.param_groups[0]['lr']:.4g} at the resumed position", file=sys.stderr)
        listed = ", ".join(f"{k} {saved.get(k)} -> {cfg[k]}" for k in changed)
        print(f"minidl-train: note: --resume applies {listed} from epoch {st['epoch'] + 1}, batch "
              f"{st['batch']} on", file=sys.stderr)

    # ---------------------------------------------------------------- checkpoints
    def checkpoint_state(self):
        """Where the run can be continued from, in words."""
        return describe_checkpoint(*self.saved) if self.saved else "no checkpoint of this run was written"

    def weights_metadata(self):
        cfg = self.cfg
        meta = {"model": cfg["model"], "model_kwargs": cfg["model_kwargs"], "dataset": cfg["dataset"],
                "data": cfg["data"], "classes": list(self.train_set.classes),
                "class_names": list(getattr(self.train_set, "class_names", self.train_set.classes)),
                "image_size": cfg["image_size"], "val_resize": cfg["val_resize"],
                "input": self.spec.to_json()}
        return {k: json.dumps(v) for k, v in meta.items()}

    def save(self, tag="last", metrics=None):
        if not self.ranks.main:  # rank 0 writes the checkpoints every rank resumes from
            self.last_save = time.monotonic()
            return None
        state = {"step": self.state["step"], "progress": dict(self.state), "config": self.cfg,
                 "metrics": metrics, SCALER_KEY: self.amp.state_dict()}
        if tag == "best":  # weights only: for evaluation and prediction
            return save_checkpoint(self.out, tag, self.model, train_state=state,
                                   weights_metadata=self.weights_metadata())
        self.last_save = time.monotonic()
        path = save_checkpoint(self.out, tag, self.model, self.optimizer, self.scheduler, state,
                               self.weights_metadata(), ema=self.ema and self.ema.state_dict())
        self.saved = (path, dict(self.state))
        return path

    # ---------------------------------------------------------------- one step
    def loss_of(self, outputs, labels):
        ls = self.cfg["label_smoothing"] or 0.0
        if isinstance(outputs, (tuple, list)):
            loss = F.cross_entropy(outputs[0], labels, label_smoothing=ls)
            if self.aux_weight is None:
                raise UsageError(f"model {self.cfg['model']!r} returns auxiliary outputs but registers "
                                 "no aux_weight; pass --aux-weight")
            for aux in outputs[1:]:
                if aux is not None:
                    loss = loss + F.cross_entropy(aux, labels, label_smoothing=ls) * self.aux_weight
            return loss
        return F.cross_entropy(outputs, labels, label_smoothing=ls)

    def checked_step_value(self, loss, images, where):
        """The step's loss read now (distributed and --skip-nonfinite decide per step):
        the global batch's value, or None when the step is skipped."""
        st = self.state
        value, stop = self.ranks.step_outcome(float(loss.item()), images, self.stop())
        self.stop_requested = stop
        if self.amp.tolerates_nonfinite(math.isfinite(value)):
            self.report_skip(value, where)
            self.amp.skip(loss, self.optimizer)
            return None
        if not math.isfinite(value):
            if not self.cfg["skip_nonfinite"]:
                raise NonFiniteLoss(f"the loss is {value} {where}")
            print(f"minidl-train: skipping the step {where}: the loss is {value}", file=sys.stderr)
            st["skipped_steps"] += 1
            return None
        return value

    def record(self, r):
        """A step's figures into the epoch's sums, the history and the step log."""
        st = self.state
        st["loss_sum"] += r.loss * r.images
        st["loss_count"] += r.images
        st["correct"] = st.get("correct", 0) + int(r.correct)
        self.history.append((r.step, r.loss))
        self.step_log.step(r.step, r.epoch, r.loss, r.lr, r.images)

    def read_pending(self):
        """Read the queued steps (one transfer) and record them; the first non-finite loss
        stops the run naming its step, before anything is saved.  Under --amp a
        non-finite loss was a step the scaler skipped on the device: counted, and only
        a run of more than MAX_NONFINITE_STEPS stops."""
        if self.pending is None:
            return
        for r in self.pending.read():
            finite = math.isfinite(r.loss)
            if self.amp.tolerates_nonfinite(finite):
                self.report_skip(r.loss, r.where)
                continue
            if not finite:
                raise NonFiniteLoss(f"the loss is {r.loss} {r.where}")
            self.record(r)

    def report_skip(self, value, where):
        print(f"minidl-train: skipping the step {where}: the loss is {value} under "
              f"--amp {self.amp.mode} ({self.amp.nonfinite_run} in a row; {MAX_NONFINITE_STEPS} stop "
              "the run)", file=sys.stderr)
        self.state["skipped_steps"] += 1

    def train_step(self, images, labels):
        st = self.state
        self.scheduler.step(st["epoch"] + st["batch"] / self.steps_per_epoch)
        device = self.cfg["device"]
        if self.mixer is not None:  # soft targets (N, classes)
            images, labels = recipe_parts.mix_batch(self.mixer, images, labels, self.cfg["seed"],
                                                    st["epoch"], st["batch"])
        # non-blocking: on a GPU the batch's copy overlaps the previous step's kernels
        x = minidl.as_tensor(self.spec(images), dtype=self.cfg["dtype"]).to(device, non_blocking=True)
        y = minidl.as_tensor(labels).to(device, non_blocking=True)
        with self.amp.autocast():
            outputs = self.model(x)
            # integer labels reach the loss as host data: cross_entropy range-checks them
            # before its upload (a check of device labels would be a sync on a GPU)
            loss = self.loss_of(outputs, labels if labels.ndim == 1 else y)
        logits = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        target = y.argmax(axis=1) if y.ndim == 2 else y  # mixed soft targets: their largest class
        correct = (logits.argmax(axis=1) == target).sum()
        where = f"at step {st['step'] + 1} (epoch {st['epoch'] + 1}, batch {st['batch'] + 1})"
        epoch = st["epoch"] + (st["batch"] + 1) / self.steps_per_epoch
        lr = self.optimizer.param_groups[0]["lr"]
        if self.pending is not None:  # read at the next log point: the step queues without a sync
            self.pending.add(st["step"] + 1, epoch, where, lr, len(labels), loss, correct)
            self.stop_requested = self.stop()
            value = True
        else:
            value = self.checked_step_value(loss, len(labels), where)
            if value is None:
                return None
            self.record(StepRecord(st["step"] + 1, epoch, where, lr, len(labels), value, float(correct)))
        accum = self.cfg["grad_accum_steps"]
        if st["batch"] % accum == 0:
            self.optimizer.zero_grad()
        self.amp.backward(loss * (1.0 / accum) if accum > 1 else loss)
        if (st["batch"] + 1) % accum and st["batch"] + 1 < self.steps_per_epoch:
            return value  # the gradients of this window's next batches are added first
        clip = (lambda: optim.clip_grad_norm_(self.model.parameters(), self.cfg["clip_grad_norm"])) \
            if self.cfg["clip_grad_norm"] else None
        self.amp.step(self.optimizer, clip)
        if self.ema is not None:
            self.ema.update(self.net)
        return value

    # ---------------------------------------------------------------- epochs
    def run(self):
        cfg, st = self.cfg, self.state
        removed = remove_stale_files(self.out) if self.ranks.main else []
        if removed:
            print(f"minidl-train: removed {len(removed)} stale file(s) of an interrupted write from "
                  f"{self.out}: {', '.join(removed)}", file=sys.stderr)
        main = self.ranks.main  # rank 0 alone writes the logs
        log_file = open_log(self.out, self.state["epoch"] if self.resumed else None) if main else open(os.devnull, "w")
        step_log = StepLog(self.out, cfg["log_interval"], cfg["tensorboard"],
                           self.state["step"] if self.resumed else None) if main else NoStepLog()
        with self.stop, log_file as log, step_log as self.step_log:
            while st["epoch"] < cfg["epochs"]:
                started = time.perf_counter()
                timing = self.train_epoch()
                if timing is None:  # stopped: a signal or --max-steps
                    return self.finish_early()
                self.save("last")  # the epoch's steps are kept, whatever happens in validation
                val = self.validate()
                if val is None:
                    return self.finish_early()
                self.end_epoch(val, timing, time.perf_counter() - started, log)
        return self.finish()

    def train_epoch(self):
        cfg, st = self.cfg, self.state
        if st["batch"] >= self.steps_per_epoch:
            return {"data_s": 0.0, "compute_s": 0.0, "images": 0}
        batches = epoch_batches(self.train_loader, st["epoch"], st["batch"], cfg["workers"])
        bar = ProgressBar(self.steps_per_epoch, st["batch"], f"epoch {st['epoch'] + 1}/{cfg['epochs']}",
                          self.ranks.main)
        timing = {"data_s": 0.0, "compute_s": 0.0, "images": 0}
        iterator = iter(batches)
        try:
            while st["batch"] < self.steps_per_epoch:
                t0 = time.perf_counter()
                try:
                    images, labels = next(iterator)
                except StopIteration:  # a batch of only unreadable images was left out
                    break
                t1 = time.perf_counter()
                value = self.train_step(images, labels)
                t2 = time.perf_counter()
                st["batch"] += 1
                if value is not None:
                    st["step"] += 1
                timing["data_s"] += t1 - t0
                timing["compute_s"] += t2 - t1
                timing["images"] += len(labels)
                stopping = self.stop_requested or (cfg["max_steps"] and st["step"] >= cfg["max_steps"])
                saving = time.monotonic() - self.last_save > 60 * cfg["checkpoint_minutes"]
                if stopping or saving or st["batch"] == self.steps_per_epoch \
                        or st["step"] % cfg["log_interval"] == 0:
                    self.read_pending()  # a log point: before anything is saved or printed
                bar.update(st, self.optimizer.param_groups[0]["lr"], len(labels), t1 - t0, t2 - t1)
                if stopping:
                    return None
                if saving:
                    self.save("last")
            self.read_pending()  # (a last batch of only unreadable images ended the loop early)
        except NonFiniteLoss as e:
            bar.close()
            raise SystemExit(f"minidl-train: error: {e}; stopping: {self.checkpoint_state()}. Lower --lr, "
                             "set --clip-grad-norm, or pass --skip-nonfinite to skip such steps") from None
        finally:
            bar.close()
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        st["batch"] = self.steps_per_epoch
        return timing

    def validate(self):
        bar = ProgressBar(min(len(self.val_loader), self.cfg["limit_val_batches"] or len(self.val_loader)),
                          0, "  validate", self.ranks.main)
        with self.amp.autocast():
            result = evaluate(self.model, self.val_loader, self.spec, self.cfg["device"],
                              limit_batches=self.cfg["limit_val_batches"], stop=self.stop,
                              progress=lambda i, n: bar.update_count(i))
        bar.close()
        if self.ema is not None and result is not None:
            with self.ema.applied(self.net):
                result["ema"] = evaluate(self.model, self.val_loader, self.spec, self.cfg["device"],
                                         limit_batches=self.cfg["limit_val_batches"], stop=self.stop)
        self.model.train()
        if self.ranks.any(result is None or (self.ema is not None and result.get("ema") is None)):
            return None  # stopped on some rank
        if self.ema is not None:
            result["ema"] = self.ranks.reduce_metrics(result["ema"])
        return self.ranks.reduce_metrics(result)

    def end_epoch(self, val, timing, seconds, log):
        """Print and log the epoch's record, then save 'best' (only on finite metrics that
        improve top-1) and 'last'."""
        st = self.state
        train_loss = st["loss_sum"] / st["loss_count"] if st["loss_count"] else None
        metrics = (train_loss, val["loss"], val.get("top1"), val.get("top5"))
        finite = all(v is None or math.isfinite(v) for v in metrics)
        train_top1 = st.get("correct", 0) / st["loss_count"] if st["loss_count"] else None
        record = {"epoch": st["epoch"] + 1, "step": st["step"], "time": utc_now(), "train_loss": train_loss,
                  "train_top1": train_top1,
                  "val_loss": val["loss"], "val_top1": val.get("top1"), "val_top5": val.get("top5"),
                  "finite": finite, "lr": self.optimizer.param_groups[0]["lr"], "time_s": round(seconds, 2),
                  "data_s": round(timing["data_s"], 2), "compute_s": round(timing["compute_s"], 2),
                  "images_per_s": round(timing["images"] / max(timing["data_s"] + timing["compute_s"], 1e-9), 1),
                  "skipped_images": getattr(self.train_loader, "skipped_total", 0),
                  "skipped_steps": st["skipped_steps"]}
        if val.get("ema"):
            record.update(ema_val_loss=val["ema"]["loss"], ema_val_top1=val["ema"].get("top1"),
                          ema_val_top5=val["ema"].get("top5"))
            print(f"  EMA weights: val loss {_fmt(val['ema']['loss'])}  top-1 "
                  f"{percent(val['ema'].get('top1'))}", flush=True)
        print(f"epoch {record['epoch']}: train loss {_fmt(train_loss)}  top-1 {percent(train_top1)}  "
              f"val loss {_fmt(val['loss'])}  "
              f"top-1 {percent(val.get('top1'))}  top-5 {percent(val.get('top5'))}  "
              f"({seconds:.0f} s, {record['images_per_s']:.0f} img/s)"
              + ("" if finite else "  metrics not finite: 'best' kept"), flush=True)
        log.write(json.dumps(record) + "\n")
        log.flush()
        recipe_parts.report_plateau(self.scheduler, val.get("top1"))
        self.step_log.epoch(record)
        st.update(epoch=st["epoch"] + 1, batch=0, loss_sum=0.0, loss_count=0, correct=0)
        self.last_val = val
        if finite and (st["best_top1"] is None or val["top1"] > st["best_top1"]):
            st["best_top1"] = val["top1"]
            self.save("best", metrics=record)
        self.save("last", metrics=record)

    def finish_early(self):
        path = self.save("last")
        st = self.state
        if self.stop_requested or self.stop():  # (a signal during validation sets only the latter)
            print(f"minidl-train: stopped at step {st['step']} (epoch {st['epoch'] + 1}, batch "
                  f"{st['batch']}); checkpoint saved: {path}\n  continue with: python -m minidl.train "
                  f"--resume {path}", file=sys.stderr)
            return 128 + (self.stop.signum or signal.SIGTERM)  # another rank received it
        print(f"minidl-train: reached --max-steps {self.cfg['max_steps']}; checkpoint saved: {path}")
        return 0

    def finish(self):
        val = getattr(self, "last_val", None)
        test = None
        if val is not None and self.test_loader is not None:  # reported, never used to choose
            test = self.ranks.reduce_metrics(evaluate(self.model, self.test_loader, self.spec, self.cfg["device"]))
        if not self.ranks.main:
            return 0
        curves = draw_curves(self.out)
        results = {"model": self.cfg["model"], "dataset": self.cfg["dataset"], "epochs": self.state["epoch"],
                   "steps": self.state["step"], "best_top1": self.state["best_top1"]}
        if val is not None:
            results.update(val_top1=val.get("top1"), val_top5=val.get("top5"), val_loss=val["loss"])
            rows = [("model", self.cfg["model"]), ("epochs", str(self.state["epoch"])),
                    ("val top-1", percent(val.get("top1"))), ("val top-5", percent(val.get("top5"))),
                    ("best top-1", percent(self.state["best_top1"]))]
            if test is not None:
                results.update(test_top1=test.get("top1"), test_top5=test.get("top5"), test_loss=test["loss"])
                rows += [("test top-1", percent(test.get("top1"))), ("test top-5", percent(test.get("top5")))]
            print(format_table(rows))
        mio.atomic_write(os.path.join(self.out, "results.json"), json.dumps(results, indent=1))
        print(f"checkpoints, logs{' and curves' if curves else ''} in {self.out}/")
        return 0


def _fmt(value):
    return "n/a" if value is None else f"{value:.4f}"


class ProgressBar:
    """A tqdm bar with loss, lr, images/s and data vs compute time (plain lines without tqdm)."""

    def __init__(self, total, initial, desc, enabled=True):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
                                mininterval=0.5, leave=desc.startswith("epoch"))
            except ImportError:
                pass
        self.loss = None
        self.data_s = self.compute_s = 0.0
        self.images = 0

    def update(self, state, lr, images, data_s, compute_s):
        # the epoch's mean loss as of the last --log-interval read ("-" before the first)
        loss = f"{state['loss_sum'] / state['loss_count']:.4f}" if state["loss_count"] else "-"
        self.data_s += data_s
        self.compute_s += compute_s
        self.images += images
        if self.bar is None:
            return
        rate = self.images / max(self.data_s + self.compute_s, 1e-9)
        self.bar.set_postfix_str(f"loss {loss} lr {lr:.4g} {rate:.0f} img/s "
                                 f"data {1000 * data_s:.0f}ms compute {1000 * compute_s:.0f}ms",
                                 refresh=False)
        self.bar.update(1)

    def update_count(self, n):
        if self.bar is not None:
            self.bar.update(n - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def evaluate_only(cfg, given):
    source = given.get("resume") or given.get("weights")
    if source is None:
        raise UsageError("--evaluate needs --resume CHECKPOINT or --weights FILE")
    from minidl.tools import evaluate as ev
    argv = ["--weights", source, "--device", cfg["device"], "--workers", str(cfg["workers"])]
    for key in ("model", "dataset", "data", "image_size", "val_resize", "limit_val_batches"):
        if key in given:
            flag = "--limit-batches" if key == "limit_val_batches" else "--" + key.replace("_", "-")
            argv += [flag, str(given[key])]
    return ev.main(argv)


def saved_settings(checkpoint):
    """The settings of the run a minidl-train checkpoint continues, after checking that
    its progress and settings are complete."""
    state = checkpoint.train_state
    config, progress = state.get("config"), state.get("progress")
    counts_ok = isinstance(progress, dict) and all(
        isinstance(progress.get(k), int) and progress[k] >= 0 for k in ("epoch", "batch", "step"))
    if not (counts_ok and isinstance(config, dict)):
        raise CheckpointError(f"checkpoint {checkpoint.path!r} was not written by minidl-train: expected "
                              "its train_state to hold 'config' (the settings) and 'progress' (epoch, "
                              "batch and step as integers)")
    missing = sorted(set(DEFAULTS) - set(config))
    if missing:  # continuing with defaults in their place would be another run
        raise CheckpointError(f"checkpoint {checkpoint.path!r}: its settings lack {missing} (edited, or "
                              "written by another version of minidl-train)")
    checkpoint.check_resumable()
    return config


def main(argv=None):
    given = parse_args(argv)
    from minidl.distributed import launched_world_size
    if launched_world_size() == 1:
        return _main(given, Ranks())
    ranks = Ranks.start(given.get("device", "cpu"))
    with ranks.quiet_unless_main():
        return ranks.fail(_main(given, ranks))


def _main(given, ranks):
    checkpoint = trainer = None
    try:
        if "resume" in given and not given.get("evaluate"):
            checkpoint = load_checkpoint(given["resume"])
            cfg = resolve_config(given, saved_settings(checkpoint), ranks.world)
            cfg["output"] = given.get("output", os.path.dirname(os.path.abspath(checkpoint.path)))
            done = checkpoint.train_state["progress"]["epoch"]
            if cfg["epochs"] < done:
                raise UsageError(f"--epochs {cfg['epochs']}: the checkpoint has already completed {done} epochs")
        else:
            cfg = resolve_config(given, world_size=ranks.world)
        if given.get("evaluate"):
            return evaluate_only(cfg, given)
        if ranks.main:
            prepare_run_folder(cfg["output"], given.get("overwrite"), checkpoint and checkpoint.path)
        ranks.any(False)  # the others wait until rank 0 has prepared the folder
        trainer = Trainer(cfg, checkpoint, ranks)
        if checkpoint is None and "weights" in given:
            minidl.io.load(weights_path(given["weights"]), trainer.model)
        print(f"minidl-train: {cfg['model']} on {cfg['dataset']} ({len(trainer.train_set)} train / "
              f"{len(trainer.val_set)} val images, {len(trainer.train_set.classes)} classes), "
              f"recipe {cfg['recipe']}: {cfg['opt']} lr {cfg['lr']:.4g} batch {cfg['batch_size']} "
              f"{cfg['sched']} schedule, {cfg['epochs']} epochs, device {cfg['device']}", flush=True)
        return trainer.run()
    except (UsageError, CheckpointError) as e:
        print(f"minidl-train: error: {e}", file=sys.stderr)
    except (OSError, ValueError) as e:  # a full disk, a read-only folder, data that fails mid-run
        reason = f"{e.strerror} ({e.filename})" if isinstance(e, OSError) and e.strerror else str(e)
        if trainer is not None:
            reason += "; " + trainer.checkpoint_state()
        elif checkpoint is not None:
            reason += "; " + describe_checkpoint(checkpoint.path, checkpoint.train_state["progress"])
        elif isinstance(e, OSError):
            reason += "; no checkpoint of this run was written"
        print(f"minidl-train: error: {reason}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
