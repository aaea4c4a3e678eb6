"""TensorBoard events -> scalar points and hyperparameters, and MLflow's rules for keys.

Scalars come in two encodings: `simple_value` (TF1, torch's SummaryWriter) and a numeric
0-d tensor under the 'scalars' plugin (TF2 `tf.summary.scalar`, torch `new_style=True`).
Writers keep the plugin metadata only on the first value of a tag, so a tensor without
metadata is taken as a scalar when it is a single number and its tag was not seen under
another plugin - which also lets an import resume from the middle of a file.

Sources: TensorBoard's `Event` / `Summary` protos (tensorboard/compat/proto/event.proto,
summary.proto) and its hparams plugin (plugins/hparams/plugin_data.proto); MLflow's key rules
(mlflow/utils/validation.py: 250 characters; letters, digits and _ - . space : /).
"""
from __future__ import annotations

import functools
import hashlib
import math
import posixpath
import re
import struct

MAX_KEY_LENGTH = 250          # MLflow's limit on metric and param keys
MAX_PARAM_VALUE_LENGTH = 6000
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")

LEGACY_KINDS = {"image": "images", "histo": "histograms", "audio": "audio", "tensor": "tensors"}  # TF1 fields
_unpack_double = struct.Struct("<d").unpack_from
_unpack_float = struct.Struct("<f").unpack_from


@functools.cache
def _protos():
    """TensorBoard's protobuf modules, imported on first decode (not when vtm starts):
    (Event.FromString, types_pb2, {dtype: (struct format of one element in tensor_content,
    element size, repeated field)})."""
    from tensorboard.compat.proto import event_pb2, types_pb2

    numeric = {
        types_pb2.DT_FLOAT: ("<f", 4, "float_val"),
        types_pb2.DT_DOUBLE: ("<d", 8, "double_val"),
        types_pb2.DT_HALF: ("<e", 2, "half_val"),
        types_pb2.DT_BFLOAT16: (None, 2, "half_val"),
        types_pb2.DT_INT8: ("<b", 1, "int_val"),
        types_pb2.DT_UINT8: ("<B", 1, "int_val"),
        types_pb2.DT_INT16: ("<h", 2, "int_val"),
        types_pb2.DT_UINT16: ("<H", 2, "int_val"),
        types_pb2.DT_INT32: ("<i", 4, "int_val"),
        types_pb2.DT_UINT32: ("<I", 4, "uint32_val"),
        types_pb2.DT_INT64: ("<q", 8, "int64_val"),
        types_pb2.DT_UINT64: ("<Q", 8, "uint64_val"),
    }
    return event_pb2.Event.FromString, types_pb2, numeric


def _path_like_ok(key: str) -> bool:
    """MLflow's rule: a key read as a path must not resolve to another name."""
    norm = posixpath.normpath(key)
    return bool(key) and norm == key and norm != "." and not norm.startswith(("..", "/"))


def mlflow_key(name: str, flatten: bool = False) -> str:
    """The MLflow metric/param key for a TensorBoard tag: deterministic, always valid.

    `/` becomes `_` with `flatten`; characters MLflow rejects become `_`; empty, `.` and `..`
    path segments (which MLflow rejects as path-like) become underscores; a key longer than
    MLflow's limit is cut and given a hash of the full name so that it stays unique."""
    key = name.replace("/", "_") if flatten else name
    key = _BAD_KEY_CHARS.sub("_", key)
    if not _path_like_ok(key):
        parts = [part if part not in ("", ".", "..") else "_" * max(1, len(part))
                 for part in key.split("/")]
        if parts[0].startswith(".."):
            parts[0] = "_" + parts[0][1:]
        key = "/".join(parts)
    if len(key) > MAX_KEY_LENGTH:
        key = key[:MAX_KEY_LENGTH - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return key


def tensor_scalar(tensor) -> float | None:
    """The number in a single-element numeric TensorProto, else None."""
    _, types_pb2, numeric = _protos()
    spec = numeric.get(tensor.dtype)
    if spec is None:
        return None
    for dim in tensor.tensor_shape.dim:
        if dim.size != 1:
            return None
    fmt, size, field = spec
    content = tensor.tensor_content
    if content:
        if len(content) != size:
            return None
        if fmt is None:  # bfloat16: the high half of a float32
            return struct.unpack("<f", b"\0\0" + content)[0]
        return float(struct.unpack(fmt, content)[0])
    values = getattr(tensor, field)
    if len(values) > 1:
        return None
    if not values:
        return 0.0  # TensorFlow's reading of a tensor with no values: zeros
    value = values[0]
    if tensor.dtype == types_pb2.DT_HALF:
        return struct.unpack("<e", struct.pack("<H", value & 0xFFFF))[0]
    if tensor.dtype == types_pb2.DT_BFLOAT16:
        return struct.unpack("<f", struct.pack("<I", (value & 0xFFFF) << 16))[0]
    return float(value)


def param_value(value) -> str:
    """A google.protobuf.Value from the hparams plugin as an MLflow param string."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) < 2 ** 53:
            return str(int(number))  # torch writes ints as doubles: 32.0 was 32
        return repr(number)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return str(value.bool_value)
    if kind is None or kind == "null_value":
        return "None"
    from google.protobuf.json_format import MessageToJson

    return MessageToJson(value, indent=None)


class EventDecoder:
    """Decodes the serialized Events of one run: `decode(data)` ->
    `(wall_time, step, [(key, value), ...], params or None)`, or None for other events.
    Values that are no scalars (images, histograms, text, ...) are counted in `left_out`,
    (tag, plugin) -> count, the plugin as TensorBoard names it ("images", "histograms", ...).

    Tags come out already mapped by `key_of` (cached per tag). The common record - one
    `simple_value` per event, as torch and TF1 write them - is read straight off the wire
    (fields are serialized in field-number order); anything else goes through protobuf."""

    def __init__(self, key_of=lambda tag: tag):
        self.plugins: dict[str, str] = {}  # tag -> plugin name from the first metadata seen
        self.left_out: dict[tuple[str, str], int] = {}  # (tag, plugin) -> values that are no scalars
        self._key_of = key_of
        self._keys: dict = {}              # tag (str or utf-8 bytes) -> key

    def key(self, tag):
        """The MLflow key of a TensorBoard tag (str or UTF-8 bytes), through key_of, cached."""
        key = self._keys.get(tag)
        if key is None:
            key = self._keys[tag] = self._key_of(tag if isinstance(tag, str) else tag.decode())
        return key

    def decode(self, data: bytes):
        """One serialized Event proto -> (wall_time s, step, [(key, value), ...], hparams or None),
        or None for an event without scalars or hparams."""
        fast = self._decode_simple(data)
        return fast if fast is not None else self._decode_proto(data)

    def _decode_simple(self, data: bytes):
        # Event{1: wall_time fixed64, 2: step varint, 5: Summary{1: Value{1: tag, 2: float}*}};
        # any other shape (or a short record: IndexError) goes to protobuf.
        try:
            if data[0] != 0x09:
                return None
            if data[9] == 0x10:
                step = data[10]
                i = 11
                if step >= 0x80:
                    step &= 0x7F
                    shift = 7
                    while True:
                        byte = data[i]
                        i += 1
                        step |= (byte & 0x7F) << shift
                        if byte < 0x80:
                            break
                        shift += 7
                        if shift > 63:
                            return None
                    if step >= 1 << 63:
                        step -= 1 << 64
            else:
                step = 0
                i = 9
            size = len(data)
            if data[i] != 0x2A or data[i + 1] >= 0x80 or i + 2 + data[i + 1] != size:
                return None
            i += 2
            values = []
            keys = self._keys
            while i < size:
                tag_length = data[i + 3]
                if data[i] != 0x0A or data[i + 2] != 0x0A or data[i + 1] != tag_length + 7 \
                        or tag_length >= 0x80 or data[i + 4 + tag_length] != 0x15:
                    return None
                tag = data[i + 4:i + 4 + tag_length]
                key = keys.get(tag)
                if key is None:
                    key = self.key(tag)
                values.append((key, _unpack_float(data, i + 5 + tag_length)[0]))
                i += 9 + tag_length
            if i != size:
                return None
        except (IndexError, UnicodeDecodeError):
            return None
        return _unpack_double(data, 1)[0], step, values, None

    def _decode_proto(self, data: bytes):
        event = _protos()[0](data)
        if event.WhichOneof("what") != "summary":
            return None
        values = []
        params = None
        for value in event.summary.value:
            plugin = None
            if value.HasField("metadata"):
                plugin = value.metadata.plugin_data.plugin_name or None
                if plugin:
                    self.plugins[value.tag] = plugin
            if plugin is None:
                plugin = self.plugins.get(value.tag)
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                values.append((self.key(value.tag), value.simple_value))
            elif plugin == "hparams":
                found = hparams_of(value.metadata.plugin_data.content) if value.HasField("metadata") else None
                if found:
                    params = {**(params or {}), **found}
            elif kind == "tensor" and plugin in (None, "scalars"):
                number = tensor_scalar(value.tensor)
                if number is not None:
                    values.append((self.key(value.tag), number))
                else:
                    self._leave_out(value.tag, plugin or "tensors")
            elif kind is not None:  # images, histograms, audio, text, PR curves, ...
                self._leave_out(value.tag, plugin or LEGACY_KINDS.get(kind, kind))
        return event.wall_time, event.step, values, params

    def _leave_out(self, tag: str, plugin: str) -> None:
        self.left_out[tag, plugin] = self.left_out.get((tag, plugin), 0) + 1


def hparams_of(content: bytes) -> dict[str, str] | None:
    """The hyperparameters of an hparams-plugin session_start_info, as param strings."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    try:
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
    except Exception:
        return None
    if not data.HasField("session_start_info"):
        return None
    return {name: param_value(value) for name, value in data.session_start_info.hparams.items()}


def json_number(value: float):
    """A metric value for MLflow's JSON API (protobuf JSON spells non-finite doubles as strings)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def stored_value(value: float) -> float:
    """The value MLflow's SQL stores hand back for a logged one (infinities are clamped)."""
    if math.isinf(value):
        return 1.7976931348623157e308 if value > 0 else -1.7976931348623157e308
    return value

