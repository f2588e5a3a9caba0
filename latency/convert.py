"""Block spec -> torch -> ONNX -> onnx2tf (in-process) -> float32 ``.tflite``.

Results are cached on disk, addressed by the content of the request (the spec or
architecture key, the tool versions and this pipeline's settings), so a block is converted
once per machine. Every conversion is checked numerically against torch.

Two facts about onnx2tf shape this module (see ``../shared/README.md``):

* it would download a sample-image ``.npy`` from the internet whenever all inputs are 3-channel
  images: :func:`_offline_onnx2tf` hands it local data instead, so conversion never touches
  the network;
* it ends some blocks (those with a residual add) with a TRANSPOSE back to NCHW that a whole
  network converted at once does not have; :func:`strip_output_transposes` removes it, so a
  block is timed as it runs inside a network (every block output is NHWC).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from latency.errors import ConversionError, NumericalMismatchError
from nas.core.files import atomic_write, atomic_write_text, file_sha256
from nas.core.specs import Architecture, BlockSpec, describe, in_shape, spec_key

PIPELINE_VERSION = 2  # bump when the conversion recipe changes: old cache entries are ignored
OPSET = 17


def default_cache_dir() -> Path:
    """Converted models: ``$DONNA_CACHE_DIR/tflite`` (see :mod:`nas.core.settings`)."""
    from nas.core.settings import cache_dir

    return cache_dir("tflite")


def import_tensorflow() -> Any:
    """Import TensorFlow quietly (its C++ and Python loggers are very chatty)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        sink = io.StringIO()
        try:
            with _native_stderr_to(sink):  # C++ start-up chatter (cuDNN, XLA registrations)
                import tensorflow  # noqa: F401
        except Exception:
            sys.stderr.write(sink.getvalue())
            raise
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    # We time with tf.lite.Interpreter on purpose (see module docs of latency.host).
    warnings.filterwarnings("ignore", message=r"(?s).*tf.lite.Interpreter is deprecated")
    with contextlib.suppress(Exception):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


@cache
def converter_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        "pipeline": str(PIPELINE_VERSION),
        "opset": str(OPSET),
        **{pkg: version(pkg) for pkg in ("torch", "onnx", "onnx2tf", "tensorflow")},
    }


@dataclass(frozen=True)
class ConvertConfig:
    cache_dir: Path
    atol: float = 1e-4
    rtol: float = 1e-4
    seed: int = 0


@dataclass(frozen=True)
class ConvertedModel:
    """A cached ``.tflite`` and what its conversion found."""

    label: str
    key: str
    path: Path
    sha256: str
    max_abs_diff: float
    ops: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    seconds: float
    cached: bool = False

    def to_meta(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _cache_id(what: str) -> str:
    text = json.dumps({"what": what, "versions": converter_versions()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _local_calibration_images() -> np.ndarray:
    # Same shape and range as the file onnx2tf would download (20 RGB images, 128x128, [0,1]).
    return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)


@contextlib.contextmanager
def _offline_onnx2tf() -> Any:
    import_tensorflow()
    import onnx2tf.onnx2tf as o2t

    saved = o2t.download_test_image_data
    o2t.download_test_image_data = _local_calibration_images
    try:
        yield
    finally:
        o2t.download_test_image_data = saved


_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def _native_stderr_to(sink: io.StringIO) -> Any:
    """TensorFlow's C++ code logs straight to file descriptor 2; capture it (into ``sink``)
    while converting, so users see progress bars, not converter chatter."""
    with _STDERR_LOCK:  # fd 2 is process-wide: one redirection at a time
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as f:
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                f.seek(0)
                sink.write(f.read().decode(errors="replace"))


@contextlib.contextmanager
def quiet_native_stderr() -> Any:
    """Hide the TFLite runtime's C++ start-up lines (e.g. the XNNPACK delegate notice); if
    anything inside raises, the captured text is printed so no diagnosis is lost."""
    sink = io.StringIO()
    try:
        with _native_stderr_to(sink):
            yield
    except BaseException:
        sys.stderr.write(sink.getvalue())
        raise


def strip_output_transposes(model_bytes: bytes) -> bytes:
    """Remove TRANSPOSE ops that only feed a graph output (layout fix-ups onnx2tf appends),
    so the model ends in NHWC like the inside of a network."""
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    sub = model.subgraphs[0]
    changed = False
    while True:
        producers = {out: i for i, op in enumerate(sub.operators) for out in op.outputs}
        consumers = [t for op in sub.operators for t in op.inputs]
        for pos, out in enumerate(list(sub.outputs)):
            i = producers.get(out)
            if i is None:
                break
            op = sub.operators[i]
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            src = op.inputs[0]
            if (
                builtin == schema_fb.BuiltinOperator.TRANSPOSE
                and src not in sub.inputs
                and (consumers.count(src) == 1)
            ):
                sub.outputs[pos] = src
                del sub.operators[i]
                changed = True
                break
        else:
            break
    if not changed:
        return model_bytes
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_op_names(model_bytes: bytes) -> tuple[str, ...]:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    return tuple(
        flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        for op in model.subgraphs[0].operators
    )


def run_tflite(model: bytes | Path, x_nhwc: np.ndarray, threads: int = 1) -> np.ndarray:
    tf = import_tensorflow()
    with quiet_native_stderr():
        if isinstance(model, Path):
            interp = tf.lite.Interpreter(model_path=str(model), num_threads=threads)
        else:
            interp = tf.lite.Interpreter(model_content=model, num_threads=threads)
        interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x_nhwc)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


class Converter:
    """Converts specs and architectures to cached, numerically checked ``.tflite`` files."""

    def __init__(self, config: ConvertConfig) -> None:
        self.config = config
        Path(config.cache_dir).mkdir(parents=True, exist_ok=True)

    # ---- public ----------------------------------------------------------------------------
    def convert(self, item: BlockSpec | Architecture) -> ConvertedModel:
        if isinstance(item, Architecture):
            return self.convert_architecture(item)
        return self.convert_block(item)

    def cached_item(self, item: BlockSpec | Architecture) -> ConvertedModel | None:
        return self.cached(item.key() if isinstance(item, Architecture) else spec_key(item))

    def convert_block(self, spec: BlockSpec) -> ConvertedModel:
        return self._convert(spec_key(spec), describe(spec), lambda: _build(spec), in_shape(spec))

    def convert_architecture(self, arch: Architecture, label: str = "") -> ConvertedModel:
        return self._convert(
            arch.key(),
            label or f"network of {len(arch)} blocks",
            lambda: _build(arch),
            in_shape(arch.blocks[0]),
        )

    def cached(self, what_key: str) -> ConvertedModel | None:
        meta_path = self._paths(_cache_id(what_key))[1]
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            model = ConvertedModel(
                **{
                    **meta,
                    "path": Path(meta["path"]),
                    "ops": tuple(meta["ops"]),
                    "input_shape": tuple(meta["input_shape"]),
                    "output_shape": tuple(meta["output_shape"]),
                    "cached": True,
                }
            )
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return model if model.path.exists() else None

    # ---- internals ------------------------------------------------------------------------
    def _paths(self, cid: str) -> tuple[Path, Path]:
        folder = Path(self.config.cache_dir) / cid[:2]
        return folder / f"{cid}.tflite", folder / f"{cid}.json"

    def _convert(
        self,
        what_key: str,
        label: str,
        build: Callable[[], Any],
        chw: tuple[int, int, int],
    ) -> ConvertedModel:
        hit = self.cached(what_key)
        if hit is not None:
            return hit
        import torch

        t0 = time.perf_counter()
        torch.manual_seed(self.config.seed)
        module = build()
        gen = torch.Generator().manual_seed(self.config.seed)
        x = torch.randn(1, *chw, generator=gen)
        with torch.no_grad():
            ref = module(x).numpy()
        try:
            model_bytes = _to_tflite(module, x, label)
        except ConversionError:
            raise
        except Exception as exc:  # onnx2tf / TFLite raise many types; name the block
            raise ConversionError(
                f"cannot convert {label}: {type(exc).__name__}: {exc}. The block uses an op "
                "that torch->ONNX->onnx2tf->TFLite does not support; change the block's "
                "options or report the spec"
            ) from exc
        model_bytes = strip_output_transposes(model_bytes)
        x_nhwc = np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1))
        out = run_tflite(model_bytes, x_nhwc)
        expected = ref.transpose(0, 2, 3, 1) if ref.ndim == 4 else ref
        if out.shape != expected.shape:
            raise ConversionError(
                f"converted {label} outputs shape {out.shape}, expected {expected.shape} (NHWC)"
            )
        diff = float(np.max(np.abs(out - expected)))
        bound = self.config.atol + self.config.rtol * float(np.max(np.abs(expected)))
        if not diff <= bound:
            raise NumericalMismatchError(
                f"converted {label} differs from torch by max |diff| = {diff:.3g} "
                f"(> tolerance {bound:.3g}); the conversion is wrong, do not time it"
            )
        cid = _cache_id(what_key)
        tfl_path, meta_path = self._paths(cid)
        tfl_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(tfl_path, lambda f: f.write(model_bytes))
        result = ConvertedModel(
            label=label,
            key=what_key,
            path=tfl_path,
            sha256=file_sha256(tfl_path),
            max_abs_diff=diff,
            ops=tflite_op_names(model_bytes),
            input_shape=tuple(x_nhwc.shape),
            output_shape=tuple(out.shape),
            seconds=time.perf_counter() - t0,
        )
        atomic_write_text(meta_path, json.dumps(result.to_meta(), indent=1))
        return result


def _build(item: BlockSpec | Architecture) -> Any:
    """The torch module of a block or a whole architecture (the one module builder), with
    non-trivial BatchNorm statistics so the numerical check tests the folding."""
    from nas.core.modules import build_architecture, build_block, randomize_bn

    module = build_architecture(item) if isinstance(item, Architecture) else build_block(item)
    return randomize_bn(module, seed=0).eval()


def _to_tflite(module: Any, x: Any, label: str) -> bytes:
    tf = import_tensorflow()  # before onnx2tf, which would import it with its C++ chatter
    import onnx2tf
    import torch

    with tempfile.TemporaryDirectory(prefix="donna-convert-") as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(
                module,
                (x,),
                onnx_path,
                dynamo=False,
                opset_version=OPSET,
                input_names=["x"],
                output_names=["y"],
            )
        sink = io.StringIO()
        with (
            _offline_onnx2tf(),
            _native_stderr_to(sink),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            keras_model = onnx2tf.convert(
                input_onnx_file_path=onnx_path,  # onnx2tf rewrites it: it is our private copy
                output_folder_path=os.path.join(tmp, "tf"),
                not_use_onnxsim=True,
                disable_model_save=True,
                non_verbose=True,
                verbosity="error",
            )
        if keras_model is None:
            raise ConversionError(
                f"onnx2tf returned no model for {label}: {sink.getvalue()[-500:]}"
            )
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        with _native_stderr_to(sink), contextlib.redirect_stdout(sink):
            return bytes(converter.convert())


# ---- parallel conversion -------------------------------------------------------------------

_WORKER: Converter | None = None


def _worker_init(config: ConvertConfig) -> None:
    global _WORKER
    from nas.core.processes import die_with_parent

    die_with_parent()  # a killed parent (even kill -9) leaves no ~1 GB worker behind
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import_tensorflow()  # first, quietly: onnx2tf would import it with all its start-up chatter
    _WORKER = Converter(config)


def _worker_convert(item: BlockSpec | Architecture) -> ConvertedModel:
    assert _WORKER is not None
    return _WORKER.convert(item)


Item = Any  # a BlockSpec or an Architecture


def convert_many(
    specs: Iterable[Item],
    config: ConvertConfig,
    workers: int = 1,
    on_done: Callable[[Item, ConvertedModel | None, ConversionError | None], None] | None = None,
) -> tuple[dict[Item, ConvertedModel], dict[Item, ConversionError]]:
    """Convert every block spec or architecture (cache hits are free). Failures are collected,
    not fatal, so one bad block never costs the others; the caller decides what to report."""
    conv = Converter(config)
    done: dict[Item, ConvertedModel] = {}
    failed: dict[Item, ConversionError] = {}

    def record(spec: Item, res: ConvertedModel | None, err: ConversionError | None) -> None:
        if res is not None:
            done[spec] = res
        if err is not None:
            failed[spec] = err
        if on_done:
            on_done(spec, res, err)

    todo = []
    for spec in specs:
        hit = conv.cached_item(spec)
        if hit is not None:
            record(spec, hit, None)
        else:
            todo.append(spec)
    if workers <= 1 or len(todo) < 4:
        for spec in todo:
            try:
                record(spec, conv.convert(spec), None)
            except ConversionError as exc:
                record(spec, None, exc)
        return done, failed
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # TensorFlow does not survive fork
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(config,)
    ) as pool:
        futures = {pool.submit(_worker_convert, s): s for s in todo}
        for fut in as_completed(futures):
            spec = futures[fut]
            try:
                record(spec, fut.result(), None)
            except ConversionError as exc:
                record(spec, None, exc)
    return done, failed
