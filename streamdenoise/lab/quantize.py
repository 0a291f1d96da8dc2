"""int8 post-training quantisation of an ONNX export, for OpenVINO's int8 CPU kernels.

The float export is rewritten in QDQ form (QuantizeLinear/DequantizeLinear pairs around each
quantised convolution; OpenVINO turns them into int8 kernels, VNNI on x86): weights int8 per
output channel, activations uint8 per tensor with ranges calibrated (min/max) on real frames
with synthetic noise. Three details keep the rounding cheap in quality:

- a ReLU that follows a quantised convolution is folded into the rounding of its output,
  whose range then starts at 0 (rounded before the ReLU, half the steps went to values the
  ReLU drops);
- the upsampling convolutions' outputs, which are added to a skip connection and span
  negative values too, stay float;
- each quantised convolution's bias is corrected for the mean shift that rounding its
  weights gives every output channel (:func:`correct_rounding_bias`).

The layers that touch the image itself stay float — the stem (its input is the recurrent
state), the σ bias and the output convolutions whose result is added to the frame — because
8-bit steps there show up directly in the picture — and the accumulator's small gate, whose
weight scales the whole running average, and the in-graph motion search (one-hot shifts and
matching costs that 8-bit steps would blur): quantising those too costs visibly more quality
than the speed it buys (figures: benchmarks/results/quality/int8.md,
benchmarks/results/bench_int8.md). The exception is a small per-frame model, whose output
convolution is a large share of its time: :class:`Int8Recipe` can quantise it too.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamdenoise.errors import UserError
from streamdenoise.models.nets import NetConfig

#: Name prefixes of the graph nodes that stay float (see the module docstring).
FLOAT_LAYERS = ("/head/", "/sigma_bias/", "/tail/", "/gate/", "/align/")
#: The output convolution (kept float unless :attr:`Int8Recipe.output`).
OUTPUT_LAYER = "/tail/"
#: Share of the calibration values inside the range with ``ranges="percentile"``.
PERCENTILE = 99.999


@dataclass(frozen=True)
class Int8Recipe:
    """What ``export --format onnx-int8`` quantises and how.

    ``output``: the output convolution too. In a small per-frame model it is a large share
    of the time (28 % of ``fast``'s int8 profile), and with percentile ranges it cost
    ``fast`` 0.05 dB at σ = 25 (``benchmarks/results/quality/int8_recipes_fast.md``).
    ``ranges``: activation ranges from the extremes of the calibration values (``minmax``)
    or from their :data:`PERCENTILE` th percentile, which clips rare outliers and so gives
    the common values finer steps."""

    output: bool = False
    ranges: str = "minmax"

    def describe(self) -> str:
        return json.dumps({"output": self.output, "ranges": self.ranges})


CALIBRATION_SIGMAS = (5, 15, 25, 40, 55)  # 8-bit scale, cycled over the frames
CALIBRATION_SIZE = 256  # square crop per frame; a multiple of every model's `multiple`
CALIBRATION_FRAMES = 60


def calibration_images(folder: Path, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """Up to ``count`` clean RGB crops (float [0, 1]) spread evenly over every image below
    ``folder`` (e.g. the training datasets)."""
    from streamdenoise.lab.data import IMAGE_EXTS, read_rgb

    if not folder.is_dir():
        raise UserError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise UserError(f"no images (png, jpg, ...) below {folder} to calibrate with")
    picked = [files[i] for i in np.linspace(0, len(files) - 1, min(count, len(files))).astype(int)]
    crops = []
    for path in picked:
        image = read_rgb(path)
        if min(image.shape[:2]) >= CALIBRATION_SIZE:
            crops.append(image[:CALIBRATION_SIZE, :CALIBRATION_SIZE].astype(np.float32) / 255)
    if not crops:
        raise UserError(f"no image below {folder} is at least {CALIBRATION_SIZE} px on each side")
    return crops


def calibration_feeds(
    images: list[np.ndarray], state_channels: int, seed: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Graph inputs as the backends build them: noisy 8-bit frames, their σ and, for temporal
    models (``state_channels`` > 0), a ``prev`` that is either the frame itself (after a
    reset) or nearly clean (a denoised previous output, a running average of noisy frames)."""
    rng = np.random.default_rng(seed)
    for index, clean in enumerate(images):
        sigma = CALIBRATION_SIGMAS[index % len(CALIBRATION_SIGMAS)] / 255
        noisy = np.round(np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 1) * 255) / 255
        feed = {
            "noisy": noisy.astype(np.float32).transpose(2, 0, 1)[None].copy(),
            "sigma": np.full((1, 3, 1, 1), sigma, np.float32),
        }
        if state_channels:
            # the output part: nearly clean; an accumulator part: noisy, with less noise
            past = [clean + rng.normal(0, sigma * s, clean.shape) for s in (0.3, 0.5)]
            prev = [noisy] * (state_channels // 3) if index % 2 else past[: state_channels // 3]
            state = np.concatenate(prev, 2).astype(np.float32).transpose(2, 0, 1)[None]
            feed["prev"] = np.ascontiguousarray(state)
        yield feed


def quantize_onnx(
    source: Path, target: Path, images: list[np.ndarray], recipe: Int8Recipe = Int8Recipe()
) -> Path:
    """Write the int8 QDQ version of the float export ``source`` to ``target``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    metadata = {p.key: p.value for p in onnx.load(str(source)).metadata_props}
    config = json.loads(metadata.get("config", "{}"))
    state_channels = NetConfig.from_dict(config).state_channels if config.get("temporal") else 0

    # made once: the bias correction and the range calibration see the same frames
    feeds = list(calibration_feeds(images, state_channels))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="streamdenoise-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        floating = tuple(p for p in FLOAT_LAYERS if not (recipe.output and p == OUTPUT_LAYER))
        keep_float = [n.name for n in graph.node if n.name.startswith(floating)]
        correct_rounding_bias(
            prepared, feeds, [n.name for n in graph.node if n.name not in keep_float]
        )
        percentile = recipe.ranges == "percentile"
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile
            if percentile
            else CalibrationMethod.MinMax,
            # a ReLU right after a quantised convolution is folded into the rounding of the
            # convolution's output (its range starts at 0): twice the steps for the values
            # that pass it, and one rounding less
            op_types_to_quantize=["Conv", "ConvTranspose", "Relu"],
            nodes_to_exclude=keep_float,
            # an upsampling's output is added to a skip connection in float: its range spans
            # negative values too, and rounding it on that coarse grid cost `fast` 0.06 dB
            extra_options={
                "ActivationSymmetric": False,
                "OpTypesToExcludeOutputQuantization": ["ConvTranspose"],
            }
            | ({"CalibPercentile": PERCENTILE} if percentile else {}),
        )
        proto = onnx.load(str(quantized))
    del proto.metadata_props[:]
    metadata |= {
        "precision": "int8",
        "calibration_frames": str(len(images)),
        "int8_recipe": recipe.describe(),
    }
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(target))
    return target


def _int8_weights(weight: np.ndarray, axis: int) -> np.ndarray:
    """``weight`` rounded as onnxruntime's per-channel symmetric ``QInt8`` stores it."""
    dims = tuple(d for d in range(weight.ndim) if d != axis)
    scale = np.maximum(np.abs(weight).max(axis=dims, keepdims=True), 1e-12) / 127
    return np.clip(np.round(weight / scale), -127, 127) * scale


def correct_rounding_bias(path: Path, feeds: list[dict[str, np.ndarray]], names: list[str]) -> None:
    """Take off each quantised convolution's bias the mean shift that rounding its weights to
    int8 gives each output channel, measured on ``feeds`` with float inputs (empirical bias
    correction: Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias
    Correction", ICCV 2019). Rewrites the float ONNX file ``path`` in place."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import helper, numpy_helper
    from torch.nn import functional as F

    model = onnx.load(str(path))
    weights = {init.name: init for init in model.graph.initializer}
    wanted = set(names)
    convs = [
        node
        for node in model.graph.node
        if node.name in wanted and node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 2
    ]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    inputs = list(dict.fromkeys(node.input[0] for node in convs))
    for name in inputs:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    shifts = {node.name: 0.0 for node in convs}
    shift_of = {}  # per node: the output shift that rounding its weights causes, given an input
    for node in convs:
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        transposed = node.op_type == "ConvTranspose"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise ValueError(f"{node.name}: asymmetric padding")
        shift_of[node.name] = functools.partial(
            F.conv_transpose2d if transposed else F.conv2d,
            weight=torch.from_numpy(_int8_weights(weight, 1 if transposed else 0) - weight),
            stride=tuple(attrs.get("strides", (1, 1))),
            padding=tuple(pads[:2]),
            dilation=tuple(attrs.get("dilations", (1, 1))),
            groups=attrs.get("group", 1),
        )
    for feed in feeds:
        values = dict(zip(inputs, session.run(inputs, feed), strict=True))
        for node in convs:
            shift = shift_of[node.name](torch.from_numpy(values[node.input[0]]))
            shifts[node.name] = shifts[node.name] + shift.mean(dim=(0, 2, 3)).numpy()
    for node in convs:
        bias = weights[node.input[2]]
        corrected = numpy_helper.to_array(bias) - shifts[node.name] / len(feeds)
        bias.CopyFrom(numpy_helper.from_array(corrected.astype(np.float32), bias.name))
    onnx.save(model, str(path))
