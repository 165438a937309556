"""What the command-line entry points share: the one place that reads the environment, the model flags, logging,
and errors printed as the service's JSON.

Every environment variable the project reads is in ``ENVIRONMENT`` (and in the README's table); nothing
below the entry points reads one. Flags win over the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Mapping

from faceanalysis.pipeline.aggregate import AGGREGATORS
from faceanalysis.pipeline.settings import AGE_GENDER_CHOICES, DEVICES, EXPRESSION_CHOICES, Settings
from facecore.errors import AnalysisError, ModelFileError

ENVIRONMENT = {
    "FACE_AGE_GENDER": "age and gender models: " + ", ".join(AGE_GENDER_CHOICES) + f" (default {Settings.age_gender})",
    "FACE_API_TOKEN": "the API token the server requires (--api-token-file wins); needed off loopback",
    "FACE_DATA_DIR": "the server's data folder: jobs, uploads (default $XDG_STATE_HOME/faceanalysis)",
    "FACE_EXPRESSION": "expression models: " + ", ".join(EXPRESSION_CHOICES) + f" (default {Settings.expression})",
    "FACE_HOST": "address the server listens on (default 127.0.0.1)",
    "FACE_PORT": "port the server listens on (default 6009)",
    "FACE_SHUTDOWN_GRACE": "seconds a stopping server gives the running analysis (default 30)",
    "RAY_ADDRESS": "the Ray cluster `faceanalysis batch` runs on, HOST:PORT (default: Ray started on this machine)",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR (default INFO; TestAPI.py and testForTimeMeasure.py log warnings only)",
    "VIDEOFACE_CACHE": "training and evaluation cache, outside the repository (default ~/.cache/videoface)",
    "XDG_STATE_HOME": "where the default data folder goes (default ~/.local/state)",
}


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The project's variables that are set (and not blank), nothing else."""
    environ = os.environ if environ is None else environ
    return {name: environ[name].strip() for name in ENVIRONMENT if environ.get(name, "").strip()}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that choose the analyzer's models and rules (defaults: the environment, then ``Settings``)."""
    group = parser.add_argument_group("models")
    group.add_argument("--age-gender", choices=AGE_GENDER_CHOICES, help="age and gender models ($FACE_AGE_GENDER)")
    group.add_argument("--expression", choices=EXPRESSION_CHOICES, help="expression models ($FACE_EXPRESSION)")
    group.add_argument("--aggregator", choices=tuple(AGGREGATORS), help="how faces combine over the sequence")
    group.add_argument("--device", choices=DEVICES, help="where the networks run (default auto)")
    group.add_argument("--batch-size", type=int, help="frames per network call (default 16)")
    group.add_argument("--detect-max-side", type=int, metavar="PIXELS",
                       help=f"detect faces on frames scaled to this long side at most; 0: on full frames "
                            f"(default {Settings.detect_max_side})")
    group.add_argument("--blazeface-proposals", action=argparse.BooleanOptionalAction,
                       help="let BlazeFace propose faces MTCNN missed (default on; off: about 5 ms of one core a "
                            "frame faster, fewer faces looking down or half out of the frame found)")


def settings_from(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """``Settings`` from the model flags, then the environment, then the defaults. Bad values exit with 2."""
    values = environment(environ)
    chosen = {"age_gender": values.get("FACE_AGE_GENDER", "").lower() or None,
              "expression": values.get("FACE_EXPRESSION", "").lower() or None}
    for name in ("age_gender", "expression", "aggregator", "device", "batch_size", "detect_max_side",
                 "blazeface_proposals"):
        if args is not None and getattr(args, name, None) is not None:
            chosen[name] = getattr(args, name)
    try:
        return Settings(**{name: value for name, value in chosen.items() if value is not None})
    except ValueError as error:
        fail("invalid_option", str(error))


def default_cache(environ: Mapping[str, str] | None = None) -> Path:
    return Path(environment(environ).get("VIDEOFACE_CACHE", Path.home() / ".cache" / "videoface")).expanduser()


def setup_logging(level: str | None = None, verbose: bool = False) -> None:
    """Logging for a command; without ``verbose``, TensorFlow's and absl's start-up messages are silenced."""
    logging.basicConfig(level=(level or environment().get("LOG_LEVEL") or "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose:
        return
    # TensorFlow's C++ start-up chatter (CPU instructions, cuDNN/cuBLAS factories, absl's "before
    # InitializeLog") says nothing a user can act on. Read when TensorFlow is imported: set before that.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("GLOG_minloglevel", "2")
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="TensorFlow's and absl's start-up messages too")


def import_tensorflow():
    """TensorFlow, imported with its start-up lines hidden when ``TF_CPP_MIN_LOG_LEVEL`` asks for quiet (2 or
    more; ``setup_logging`` sets 3 unless ``--verbose``). TensorFlow 2.21 writes absl's "before InitializeLog"
    lines and, where oneDNN is on by default (processors with AVX-512), "oneDNN custom operations are on" to the
    stderr file descriptor while it is imported, whatever that variable says; a command's stderr is its errors'
    JSON. An import that fails shows what was hidden."""
    import tempfile
    try:
        quiet = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 2
    except ValueError:
        quiet = False
    if "tensorflow" in sys.modules or not quiet:
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as hidden:
        os.dup2(hidden.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            hidden.seek(0)
            sys.stderr.write(hidden.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow


def check_device(settings: Settings) -> None:
    """``--device gpu`` where TensorFlow sees no GPU: exit 2 at once, before any model loads (``auto`` takes
    the GPU when there is one and the CPU otherwise). TensorFlow is imported here, quietly, for every device:
    the models need it next."""
    tf = import_tensorflow()
    if settings.device != "gpu":
        return
    if not tf.config.list_physical_devices("GPU"):
        fail("no_gpu", "--device gpu, but TensorFlow sees no GPU here; use --device auto (the GPU when there is "
             "one) or --device cpu")


def fail(code: str, message: str) -> None:
    """Leave with status 2 and the service's error shape, on one line of stderr."""
    print(json.dumps(AnalysisError(code, message).to_json()), file=sys.stderr)
    sys.exit(2)


def exit_with(error: Exception) -> None:
    """Print the error as the service's JSON error shape and leave with a non-zero status."""
    if isinstance(error, AnalysisError):
        print(json.dumps(error.to_json()), file=sys.stderr)
    elif isinstance(error, ModelFileError):
        fail("model_missing", str(error))
    else:
        raise error
    sys.exit(2)
