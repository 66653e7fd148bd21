"""JSON <-> tensor conversion with TF Serving's REST rules.

Follows `tensorflow_serving/util/json_tensor.cc`: row (`instances`) and
columnar (`inputs`) predict requests, `{"b64": ...}` binary values, dense
shapes taken from the first element at each level, output tensors whose
name ends in `_bytes` written back as `{"b64": ...}`, one output tensor
written without its name, and `{"results": ...}` for classify and regress.
Error messages start with TF Serving's text and end with a hint saying what
to fix.
"""

import base64
import binascii
import json
import math
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Set, Tuple

import numpy as np
from tensorflow.core.framework import types_pb2

from serving import errors
from serving.limits import MAX_TENSOR_RANK

INSTANCES_KEY = 'instances'
INPUTS_KEY = 'inputs'
SIGNATURE_KEY = 'signature_name'
EXAMPLES_KEY = 'examples'
CONTEXT_KEY = 'context'
B64_KEY = 'b64'
BYTES_SUFFIX = '_bytes'
_MAX_DEBUG_CHARS = 256

# tensorflow/core/framework/types.proto's DataType values.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = (
    types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_UINT8,
    types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_STRING)
DT_INT64, DT_BOOL, DT_BFLOAT16, DT_UINT16, DT_HALF, DT_UINT32, DT_UINT64 = (
    types_pb2.DT_INT64, types_pb2.DT_BOOL, types_pb2.DT_BFLOAT16, types_pb2.DT_UINT16,
    types_pb2.DT_HALF, types_pb2.DT_UINT32, types_pb2.DT_UINT64)
_FLOAT_TYPES = (DT_FLOAT, DT_DOUBLE, DT_HALF, DT_BFLOAT16)
_INT_TYPES = (DT_INT8, DT_UINT8, DT_INT16, DT_UINT16, DT_INT32, DT_UINT32,
              DT_INT64, DT_UINT64)
# The types a JSON tensor may hold (others are UNIMPLEMENTED, as in TF Serving).
_SUPPORTED = set(_FLOAT_TYPES + _INT_TYPES + (DT_STRING, DT_BOOL))


def dtype_name(dtype: int) -> str:
    """TensorFlow's DataTypeString for an enum value ('float', 'string')."""
    try:
        return types_pb2.DataType.Name(dtype)[len('DT_'):].lower()
    except ValueError:
        return f'type_{dtype}'


def numpy_dtype(dtype: int):
    """The numpy dtype holding values of a TF dtype (object for strings)."""
    if dtype not in _SUPPORTED:
        raise errors.ServingError(
            errors.Code.UNIMPLEMENTED,
            f'Tensors of type {dtype_name(dtype)} are not supported')
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.as_dtype(dtype).as_numpy_dtype


class _JsonError(Exception):
    """A conversion error; the hint is appended once, at the top level."""

    def __init__(self, message: str, hint: str = '',
                 code: errors.Code = errors.Code.INVALID_ARGUMENT):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


def _to_serving_error(error: _JsonError) -> errors.ServingError:
    return errors.ServingError(error.code, error.message).with_hint(error.hint)


def _debug_string(value: Any) -> str:
    """At most _MAX_DEBUG_CHARS of the value as JSON, without writing it all."""
    encoder = json.JSONEncoder(separators=(',', ':'), allow_nan=True)
    pieces, length = [], 0
    try:
        for piece in encoder.iterencode(value):
            pieces.append(piece)
            length += len(piece)
            if length > _MAX_DEBUG_CHARS:
                break
    except RecursionError:
        pass
    text = ''.join(pieces)
    if len(text) > _MAX_DEBUG_CHARS or length > _MAX_DEBUG_CHARS:
        text = text[:_MAX_DEBUG_CHARS] + '...'
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return 'Null'
    if value is True:
        return 'True'
    if value is False:
        return 'False'
    if isinstance(value, dict):
        return 'Object'
    if isinstance(value, list):
        return 'Array'
    if isinstance(value, str):
        return 'String'
    return 'Number'


def is_b64_object(value: Any) -> bool:
    """True for `{"b64": "<string>"}` and nothing else."""
    return (isinstance(value, dict) and len(value) == 1 and
            isinstance(value.get(B64_KEY), str))


def _decode_b64(value: Any, name: str) -> bytes:
    if not is_b64_object(value):
        raise _JsonError(
            f'JSON Value: {_debug_string(value)} not formatted correctly for '
            'base64 data',
            f'binary values are written {{"b64": "<base64 string>"}} with no '
            f'other key (input {name!r}).')
    try:   # the usual case, without the copies below (a photo is tens of KB of text)
        return base64.b64decode(value[B64_KEY], validate=True)
    except (binascii.Error, ValueError):
        pass   # whitespace, missing padding or an error: said below
    text = re.sub(r'\s+', '', value[B64_KEY])
    if '-' in text or '_' in text:
        raise _JsonError(
            'Unable to base64 decode',
            f"the value for input {name!r} contains '-' or '_', so it looks like "
            "URL-safe base64; TF Serving expects the standard alphabet ('+' "
            "and '/'): encode with base64.b64encode, not urlsafe_b64encode.")
    text += '=' * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _JsonError(
            'Unable to base64 decode',
            f'the "b64" value for input {name!r} is not valid standard '
            'base64.') from None


def _type_error(value: Any, dtype: int, name: str) -> _JsonError:
    message = (f'JSON Value: {_debug_string(value)} Type: {_json_type(value)} '
               f'is not of expected type: {dtype_name(dtype)}')
    hint = ''
    if dtype == DT_STRING and (_json_type(value) == 'Number'):
        hint = (f'input {name!r} takes strings; if you are sending image pixel '
                'values, send the encoded image file (JPEG/PNG/BMP/GIF) instead, '
                'as {"b64": "<base64 of the file bytes>"}.')
    elif dtype != DT_STRING and is_b64_object(value):
        hint = (f'input {name!r} is {dtype_name(dtype)}, not string: '
                '{"b64": ...} is only for string (binary) inputs; send plain '
                'JSON numbers.')
    elif dtype in _INT_TYPES and isinstance(value, float):
        hint = (f'input {name!r} is {dtype_name(dtype)}: send whole numbers '
                'without a decimal point.')
    elif (dtype in _INT_TYPES and isinstance(value, int)
          and not isinstance(value, bool)):
        info = np.iinfo(numpy_dtype(dtype))
        hint = (f'input {name!r} is {dtype_name(dtype)}: values must be in '
                f'[{info.min}, {info.max}].')
    elif isinstance(value, str) and dtype != DT_STRING:
        hint = (f'input {name!r} is {dtype_name(dtype)}: send JSON numbers or '
                'booleans, not strings.')
    return _JsonError(message, hint)


def _leaf(value: Any, dtype: int, name: str, plain_strings: Set[str]) -> Any:
    """Converts one JSON scalar to a Python value of the tensor's dtype."""
    if isinstance(value, dict):
        if dtype == DT_STRING:
            return _decode_b64(value, name)
        raise _type_error(value, dtype, name)
    if dtype == DT_STRING:
        if isinstance(value, str):
            plain_strings.add(name)
            return value.encode('utf-8')
        raise _type_error(value, dtype, name)
    if dtype == DT_BOOL:
        if isinstance(value, bool):
            return value
        raise _type_error(value, dtype, name)
    if dtype in _FLOAT_TYPES:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _type_error(value, dtype, name)
    if dtype in _INT_TYPES:
        if isinstance(value, int) and not isinstance(value, bool):
            info = np.iinfo(numpy_dtype(dtype))
            if info.min <= value <= info.max:
                return value
        raise _type_error(value, dtype, name)
    raise _JsonError(
        f'Conversion of JSON Value: {_debug_string(value)} to type: '
        f'{dtype_name(dtype)}', code=errors.Code.UNIMPLEMENTED)


def _dense_shape(value: Any, name: str) -> List[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_TENSOR_RANK:
            raise _JsonError(
                f'JSON Value for input {name!r} is nested more than '
                f'{MAX_TENSOR_RANK} lists deep; tensors have at most '
                f'{MAX_TENSOR_RANK} dimensions')
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: List[int], dtype: int, name: str,
          out: List[Any], plain_strings: Set[str]) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise _JsonError(
                f'JSON Value: {_debug_string(value)} found at incorrect level: '
                f'{level + 1} in the JSON DOM. Expected at level: {rank}',
                f'tensors are dense: every list at the same depth of input '
                f'{name!r} must have the same length and nesting.')
        out.append(_leaf(value, dtype, name, plain_strings))
        return
    if level >= rank:
        raise _JsonError(
            f'Encountered list at unexpected level: {level} expected < {rank}',
            f'tensors are dense: every element of input {name!r} must have the '
            'same nesting depth.')
    if len(value) != shape[level]:
        raise _JsonError(
            f'Encountered list at unexpected size: {len(value)} at level: '
            f'{level} expected size: {shape[level]}',
            f'tensors are dense: every list at the same depth of input {name!r} '
            'must have the same length.')
    for item in value:
        _fill(item, level + 1, shape, dtype, name, out, plain_strings)


def json_to_array(value: Any, dtype: int, name: str,
                  plain_strings: Optional[Set[str]] = None) -> np.ndarray:
    """Converts a (nested) JSON value to a dense numpy array.

    Args:
      value: the parsed JSON value (scalar, list or `{"b64": ...}`).
      dtype: the TF DataType enum value of the tensor.
      name: the input's name, used in messages.
      plain_strings: if given, collects the names of string inputs that got a
        plain JSON string rather than `{"b64": ...}`.

    Returns:
      A numpy array (dtype object holding bytes for strings).

    Raises:
      ServingError: INVALID_ARGUMENT (or UNIMPLEMENTED) on bad values.
    """
    try:
        return _json_to_array(value, dtype, name,
                              set() if plain_strings is None else plain_strings)
    except _JsonError as error:
        raise _to_serving_error(error) from None


def _json_to_array(value, dtype, name, plain_strings) -> np.ndarray:
    shape = _dense_shape(value, name)
    flat: List[Any] = []
    _fill(value, 0, shape, dtype, name, flat, plain_strings)
    np_dtype = numpy_dtype(dtype)
    if np_dtype is object:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        # A JSON number beyond float32 becomes +-inf, as in TF Serving.
        with np.errstate(over='ignore'):
            array = np.array(flat, dtype=np_dtype)
    return array.reshape(shape)


def _shape_string(shape) -> str:
    return '[' + ','.join(str(d) for d in shape) + ']'


class PredictInputs(NamedTuple):
    """A decoded predict request body."""
    inputs: Dict[str, np.ndarray]
    row_format: bool
    plain_string_inputs: Set[str]


# rapidjson's words for Python's JSON errors (TF Serving parses with rapidjson).
_RAPIDJSON_ERRORS = (
    ('Expecting value', 'Invalid value.'),
    ('Extra data', 'The document root must not be followed by other values.'),
    ('Expecting property name enclosed in double quotes',
     'Missing a name for object member.'),
    ("Expecting ':' delimiter",
     'Missing a colon after a name of object member.'),
    ('Unterminated string', 'Missing a closing quotation mark in string.'),
    ('Invalid control character', 'Invalid encoding in string.'),
    ('Invalid \\escape', 'Invalid escape character in string.'),
    ('Invalid \\uXXXX escape', 'Incorrect hex digit after \\u escape in string.'),
)
# A JSON string, or one of the characters that structure a document.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]')
# The keys of a request body that anything reads.
_READ_KEYS = (SIGNATURE_KEY, INSTANCES_KEY, INPUTS_KEY, EXAMPLES_KEY,
              CONTEXT_KEY)


def _parse_error_message(error: json.JSONDecodeError, body: bytes) -> str:
    if error.msg == "Expecting ',' delimiter":
        # rapidjson says which bracket: the innermost one open at the error.
        opened = []
        for token in _TOKEN.finditer(body, 0, error.pos):
            char = token.group()[:1]
            if char in (b'[', b'{'):
                opened.append(char)
            elif char in (b']', b'}') and opened:
                opened.pop()
        text = ("Missing a comma or '}' after an object member."
                if opened and opened[-1] == b'{' else
                "Missing a comma or ']' after an array element.")
    else:
        text = next((ours for theirs, ours in _RAPIDJSON_ERRORS
                     if error.msg.startswith(theirs)), error.msg)
    return f'JSON Parse error: {text} at offset: {error.pos}'


def parse_json(body: bytes) -> Dict[str, Any]:
    """Parses a request body; TF Serving accepts NaN and Infinity tokens.

    Python's parser recurses, rapidjson (TF Serving's) does not: a body nested
    deeper than Python allows is split into its top-level members instead, the
    ones no request reads are skipped (as TF Serving ignores them), and a read
    one that is too deep is refused by name.

    Raises:
      ServingError: INVALID_ARGUMENT if the body is empty, not JSON, not an
        object, or nested too deep where it matters.
    """
    if not body or not body.strip():
        raise errors.invalid_argument('JSON Parse error: The document is empty')
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as error:
        raise errors.invalid_argument(_parse_error_message(error, body)) from None
    except RecursionError:
        doc = _parse_deep(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise errors.invalid_argument(f'JSON Parse error: {error}') from None
    if not isinstance(doc, dict):
        raise errors.invalid_argument(
            f'JSON Value: {_debug_string(doc)} Is not object')
    return doc


def _parse_deep(body: bytes) -> Dict[str, Any]:
    """The members of a too-deep body that a request reads, parsed one by one."""
    if isinstance(body, str):
        body = body.encode('utf-8')
    start = len(body) - len(body.lstrip())
    if body[start:start + 1] != b'{':
        raise errors.invalid_argument(
            'JSON Parse error: the document is nested deeper than this server '
            'parses and is not an object')
    members, depth, key, value_start = {}, 0, None, None
    expect_key = True
    for token in _TOKEN.finditer(body, start):
        text = token.group()
        if text in (b'[', b'{'):
            depth += 1
        elif text in (b']', b'}'):
            depth -= 1
            if depth == 0:
                if key is not None:
                    members[key] = body[value_start:token.start()]
                break
        elif depth == 1:
            if text == b':':
                value_start = token.end()
            elif text == b',':
                if key is not None:
                    members[key] = body[value_start:token.start()]
                key, expect_key = None, True
            elif expect_key and text.startswith(b'"'):
                key, expect_key = json.loads(text), False
    doc = {}
    for name, text in members.items():
        if name not in _READ_KEYS:
            continue
        try:
            doc[name] = json.loads(text)
        except RecursionError:
            if name == SIGNATURE_KEY:
                raise errors.invalid_argument(
                    "JSON Value: 'signature_name' key must be a string "
                    'value.') from None
            raise errors.invalid_argument(
                f'JSON Value of {name!r} is nested deeper than this server '
                f'parses; tensors have at most {MAX_TENSOR_RANK} '
                'dimensions') from None
        except ValueError as error:
            raise errors.invalid_argument(
                f'JSON Parse error in {name!r}: {error}') from None
    return doc


def signature_name(doc: Mapping[str, Any]) -> str:
    """The optional `signature_name` of a request ('' when absent)."""
    if SIGNATURE_KEY not in doc:
        return ''
    value = doc[SIGNATURE_KEY]
    if not isinstance(value, str):
        raise errors.invalid_argument(
            f'JSON Value: {_debug_string(doc)} not formatted correctly. '
            "'signature_name' key must be a string value.")
    return value


def decode_predict(doc: Mapping[str, Any],
                   input_dtypes: Mapping[str, int],
                   signature: str = '') -> PredictInputs:
    """Builds input arrays from a predict body, as FillPredictRequestFromJson.

    Args:
      doc: the parsed request body.
      input_dtypes: the signature's input names -> TF DataType enum values.
      signature: the signature's name, for messages.

    Returns:
      The inputs, whether the body used the row format, and the string inputs
      that were sent as plain strings.

    Raises:
      ServingError: INVALID_ARGUMENT for a malformed body.
    """
    if not input_dtypes:
        raise errors.invalid_argument(
            f'Failed to get input map for signature: {signature or "DEFAULT"}')
    has_instances = INSTANCES_KEY in doc
    has_inputs = INPUTS_KEY in doc
    if has_instances and has_inputs:
        raise errors.invalid_argument(
            f'JSON Value: {_debug_string(doc)} Not formatted correctly '
            "expecting only one of 'inputs' or 'instances' keys to exist ")
    plain: Set[str] = set()
    try:
        if has_instances:
            instances = doc[INSTANCES_KEY]
            if not isinstance(instances, list):
                raise _JsonError(
                    f'JSON Value: {_debug_string(doc)} Expecting \'instances\' '
                    'to be an list/array',
                    'write "instances": [...] with one element per example.')
            if not instances:
                raise _JsonError(
                    f"JSON Value: {_debug_string(doc)} No values in "
                    "'instances' array")
            inputs = _decode_instances(instances, input_dtypes, plain)
            return PredictInputs(inputs, True, plain)
        if has_inputs:
            inputs = _decode_columnar(doc[INPUTS_KEY], input_dtypes, plain)
            return PredictInputs(inputs, False, plain)
    except _JsonError as error:
        raise _to_serving_error(error) from None
    hint = ''
    if EXAMPLES_KEY in doc:
        hint = ('"examples" is the body of :classify and :regress; :predict '
                'takes "instances" (rows) or "inputs" (columns).')
    raise errors.invalid_argument(
        "Missing 'inputs' or 'instances' key").with_hint(hint)


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64_object(value)


def _decode_instances(instances: List[Any], input_dtypes: Mapping[str, int],
                      plain: Set[str]) -> Dict[str, np.ndarray]:
    names = sorted(input_dtypes)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise _JsonError(
            'instances is a plain list, but expecting list of objects as '
            'multiple input tensors required as per tensorinfo_map',
            f'this signature has inputs {", ".join(names)}: send one object '
            'per instance with all of them.')
    objects = _is_element_object(instances[0])
    rows: Dict[str, List[np.ndarray]] = {}
    for index, element in enumerate(instances):
        if objects:
            if not _is_element_object(element):
                raise _JsonError(
                    f'Expecting object but got list at item {index} of input '
                    'list')
            for key, value in element.items():
                if key not in input_dtypes:
                    raise _JsonError(
                        f'Failed to process element: {index} key: {key} of '
                        "'instances' list. Error: INVALID_ARGUMENT: JSON object: "
                        f'does not have named input: {key}',
                        f'the signature\'s inputs are: {", ".join(names)}.')
                _add_instance(rows, key, value, input_dtypes[key], index, plain,
                              key_in_message=True)
            if set(element) != set(names):
                raise _JsonError(
                    f'Failed to process element: {index} of \'instances\' list. '
                    f'JSON object: {_debug_string(element)} keys must be equal '
                    f'to: {",".join(names)}')
        else:
            if _is_element_object(element):
                raise _JsonError(
                    f'Expecting value/list but got object at item {index} of '
                    'input list')
            _add_instance(rows, names[0], element, input_dtypes[names[0]], index,
                          plain, key_in_message=False)
    return {name: np.stack(items) if items[0].dtype != object
            else _stack_objects(items) for name, items in rows.items()}


def _stack_objects(items: List[np.ndarray]) -> np.ndarray:
    out = np.empty((len(items),) + items[0].shape, dtype=object)
    for index, item in enumerate(items):
        out[index, ...] = item
    return out


def _add_instance(rows, name, value, dtype, index, plain, key_in_message):
    try:
        array = _json_to_array(value, dtype, name, plain)
    except _JsonError as error:
        where = f' key: {name}' if key_in_message else ''
        raise _JsonError(
            f"Failed to process element: {index}{where} of 'instances' list. "
            f'Error: {error.code.name}: {error.message}', error.hint,
            error.code) from None
    previous = rows.setdefault(name, [])
    if previous:
        first = previous[0]
        if first.size != array.size:
            raise _JsonError(
                f"Failed to process element: {index} of 'instances' list. "
                f'Error: INVALID_ARGUMENT: Expecting tensor size: {first.size} '
                f'but got: {array.size}',
                f'every instance of input {name!r} must have the same shape.')
        if first.shape != array.shape:
            raise _JsonError(
                f"Failed to process element: {index} of 'instances' list. "
                f'Error: INVALID_ARGUMENT: Expecting shape '
                f'{_shape_string(first.shape)} but got: '
                f'{_shape_string(array.shape)}',
                f'every instance of input {name!r} must have the same shape.')
    previous.append(array)


def _decode_columnar(value: Any, input_dtypes: Mapping[str, int],
                     plain: Set[str]) -> Dict[str, np.ndarray]:
    names = sorted(input_dtypes)
    if not isinstance(value, dict) or is_b64_object(value):
        if len(names) > 1:
            raise _JsonError(
                'inputs is a plain value/list, but expecting an object as '
                'multiple input tensors required as per tensorinfo_map',
                f'this signature has inputs {", ".join(names)}: send '
                '"inputs": {"<name>": <tensor>, ...}.')
        return {names[0]: _json_to_array(value, input_dtypes[names[0]],
                                         names[0], plain)}
    out = {}
    for name in names:
        if name not in value:
            raise _JsonError(
                f"Missing named input: {name} in 'inputs' object.",
                f'the signature\'s inputs are: {", ".join(names)}; got '
                f'{", ".join(sorted(value)) or "none"}.')
        out[name] = _json_to_array(value[name], input_dtypes[name], name, plain)
    return out


# ---------------------------------------------------------------- outputs


def float32_value(value) -> float:
    """A float32 as the shortest decimal that reads back to it."""
    # TF Serving prints a float32 with the fewest digits that read back to the
    # same float32 (0.3, not 0.30000001192092896).
    number = float(value)
    if math.isfinite(number):
        return float(str(np.float32(value)))
    return number


def _convert_values(array: np.ndarray, as_b64: bool) -> Any:
    flat = array.reshape(-1)
    kind = array.dtype.kind
    if array.dtype == object or kind in ('S', 'U'):
        values = []
        for item in flat:
            if isinstance(item, str):
                item = item.encode('utf-8')
            if as_b64:
                values.append({B64_KEY: base64.b64encode(item).decode('ascii')})
            else:
                values.append(item.decode('utf-8', errors='replace'))
    elif kind == 'f':
        if array.dtype.itemsize <= 4:
            values = [float32_value(v) for v in flat]
        else:
            values = [float(v) for v in flat]
    elif kind == 'b':
        values = [bool(v) for v in flat]
    elif kind in ('i', 'u'):
        values = [int(v) for v in flat]
    elif array.dtype.name == 'bfloat16':
        values = [float32_value(np.float32(v)) for v in flat]
    else:
        raise errors.invalid_argument(
            f'Failed to write JSON value for tensor type: {array.dtype}')
    if array.ndim == 0:
        return values[0]
    holder = np.empty(len(values), dtype=object)
    holder[:] = values
    return holder.reshape(array.shape).tolist()


def array_to_json(array: np.ndarray, name: str) -> Any:
    """A tensor as nested JSON lists; `*_bytes` string tensors as b64."""
    array = np.asarray(array)
    return _convert_values(array, name.endswith(BYTES_SUFFIX))


def encode_predict(outputs: Mapping[str, np.ndarray], *,
                   row_format: bool) -> Dict[str, Any]:
    """Writes predict outputs as `{"predictions": ...}` or `{"outputs": ...}`.

    Raises:
      ServingError: INVALID_ARGUMENT if outputs cannot be written in rows.
    """
    if not outputs:
        raise errors.invalid_argument('Cannot convert empty tensor map to JSON')
    names = sorted(outputs)
    if not row_format:
        if len(names) == 1:
            return {'outputs': array_to_json(outputs[names[0]], names[0])}
        return {'outputs': {name: array_to_json(outputs[name], name)
                            for name in names}}
    batch_size = None
    for name in names:
        array = np.asarray(outputs[name])
        if array.ndim == 0:
            raise errors.invalid_argument(
                f'Tensor name: {name} has no shape information ')
        if batch_size is not None and array.shape[0] != batch_size:
            raise errors.invalid_argument(
                f'Tensor name: {name} has inconsistent batch size: '
                f'{array.shape[0]} expecting: {batch_size}')
        batch_size = array.shape[0]
    columns = {name: array_to_json(outputs[name], name) for name in names}
    if len(names) == 1:
        return {'predictions': columns[names[0]]}
    return {'predictions': [{name: columns[name][i] for name in names}
                            for i in range(batch_size)]}


# ------------------------------------------------------ classify / regress


def _feature_kind(feature) -> str:
    return feature.WhichOneof('kind') or ''


def _add_feature_value(value: Any, name: str, feature) -> None:
    kind = _feature_kind(feature)

    def need(expected: str) -> None:
        if kind and kind != expected:
            kind_names = {'bytes_list': 'bytes', 'float_list': 'float',
                          'int64_list': 'int64'}
            raise _JsonError(
                f'Unexpected element type in feature: {name} expecting type: '
                f'{kind_names[kind]}',
                f'all values of feature {name!r} must have one type.')

    if value is None or isinstance(value, list):
        raise _JsonError(
            f'Feature: {name} has element with unexpected JSON type: '
            f'{_json_type(value)}',
            f'a feature is a value or a flat list of values (feature {name!r}).')
    if isinstance(value, bool):
        need('int64_list')
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        if not is_b64_object(value):
            raise _JsonError(
                f'Feature: {name} has element with unexpected JSON type: Object',
                'binary feature values are written {"b64": "<base64>"}.')
        need('bytes_list')
        feature.bytes_list.value.append(_decode_b64(value, name))
    elif isinstance(value, str):
        need('bytes_list')
        feature.bytes_list.value.append(value.encode('utf-8'))
    elif isinstance(value, float):
        need('float_list')
        feature.float_list.value.append(value)
    else:
        need('int64_list')
        if value > np.iinfo(np.int64).max or value < np.iinfo(np.int64).min:
            raise _JsonError(
                f'Feature: {name} has uint64_t element. Only int64_t is '
                'supported.')
        feature.int64_list.value.append(value)


def _example_from_json(value: Any):
    from tensorflow.core.example import example_pb2  # pylint: disable=import-outside-toplevel
    if not isinstance(value, dict):
        raise _JsonError(
            f'Example must be JSON object but got JSON {_json_type(value)}',
            'each example is an object of feature name -> value(s).')
    example = example_pb2.Example()
    for name, content in value.items():
        feature = example.features.feature[name]
        if isinstance(content, list):
            for item in content:
                _add_feature_value(item, name, feature)
        else:
            _add_feature_value(content, name, feature)
    return example


def decode_examples(doc: Mapping[str, Any], method: str) -> List[bytes]:
    """Serialized tf.train.Examples from a classify/regress body.

    Args:
      doc: the parsed body with `examples` and an optional `context`.
      method: 'classify' or 'regress', for messages.

    Returns:
      One serialized Example per element of `examples`, with the context's
      features merged in as TF Serving's ExampleListWithContext does.

    Raises:
      ServingError: INVALID_ARGUMENT for a malformed body.
    """
    try:
        context = b''
        if CONTEXT_KEY in doc:
            context = _example_from_json(doc[CONTEXT_KEY]).SerializeToString()
        if EXAMPLES_KEY not in doc:
            hint = ''
            if INSTANCES_KEY in doc or INPUTS_KEY in doc:
                hint = (f':{method} takes {{"examples": [{{"<feature>": '
                        '<value>, ...}]}; "instances"/"inputs" are for '
                        ':predict.')
            raise _JsonError(
                f'JSON Value: {_debug_string(doc)} When method is {method}, '
                "key 'examples' is expected and was not found", hint)
        examples = doc[EXAMPLES_KEY]
        if not isinstance(examples, list):
            raise _JsonError(
                f"JSON Value: {_debug_string(doc)} Expecting 'examples' value "
                'to be an list/array')
        if not examples:
            raise _JsonError(
                f"JSON Value: {_debug_string(doc)} 'examples' value is an "
                'empty array')
        return [context + _example_from_json(item).SerializeToString()
                for item in examples]
    except _JsonError as error:
        raise _to_serving_error(error) from None


def encode_classification(results: List[List[Tuple[str, float]]]
                          ) -> Dict[str, Any]:
    """`{"results": [[[label, score], ...], ...]}`."""
    if not results:
        raise errors.invalid_argument(
            'Cannot convert empty ClassificationResults to JSON')
    return {'results': [[[label, float32_value(score)]
                         for label, score in classes] for classes in results]}


def encode_regression(values: List[float]) -> Dict[str, Any]:
    """`{"results": [value, ...]}`."""
    if not values:
        raise errors.invalid_argument(
            'Cannot convert empty RegressionResults to JSON')
    return {'results': [float32_value(v) for v in values]}


def dumps(doc: Any) -> str:
    """JSON text; NaN and Infinity are written as TF Serving writes them."""
    return json.dumps(doc, allow_nan=True)
