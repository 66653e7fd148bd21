"""TF Serving's util/json_tensor_test.cc, case by case, against serving/json_tensor.py.

Its tests call the JSON <-> TensorProto conversions directly; ours call our
conversions (JSON -> numpy arrays, arrays -> JSON) with the same documents and
check the same shapes, values and messages. Where TF Serving checks the text of
a number (9e+06), ours checks the number: we write Python's shortest form.
"""

import math

import numpy as np
import pytest

from serving import errors
from serving import json_tensor

INT32, FLOAT, DOUBLE, STRING = (json_tensor.DT_INT32, json_tensor.DT_FLOAT,
                                json_tensor.DT_DOUBLE, json_tensor.DT_STRING)


def decode(text, dtypes):
    return json_tensor.decode_predict(json_tensor.parse_json(text.encode()), dtypes)


def refused(text, dtypes):
    with pytest.raises(errors.ServingError) as raised:
        decode(text, dtypes)
    assert raised.value.code == errors.Code.INVALID_ARGUMENT
    return raised.value.message


def test_single_unnamed_tensor():   # SingleUnnamedTensor, TensorFromNonNullTerminatedBuffer
    decoded = decode('{"instances": [[1,2],[3,4],[5,6]]}', {'default': INT32})
    assert decoded.row_format
    array = decoded.inputs['default']
    assert array.dtype == np.int32 and array.tolist() == [[1, 2], [3, 4], [5, 6]]


def test_deeply_nested_well_formed():   # DeeplyNestedWellFormed
    text = '{"instances":[1], "nested":' + '[' * 500000 + ']' * 500000 + '}'
    assert decode(text, {'default': INT32}).inputs['default'].tolist() == [1]


def test_deeply_nested_malformed():   # DeeplyNestedMalformed
    text = '{"signature_name":' + '[' * 500000 + ']' * 500000 + '}'
    with pytest.raises(errors.ServingError) as raised:
        json_tensor.signature_name(json_tensor.parse_json(text.encode()))
    assert 'key must be a string value' in raised.value.message


@pytest.mark.parametrize('dtype,text,values', [
    (FLOAT, '[1, 2.0, 3, 4, 5.003, 0.007, 0.0]', [1, 2, 3, 4, 5.003, 0.007, 0]),
    (DOUBLE, '[1.0, 2, 3, 4, 0.662, 0, 0.0]', [1, 2, 3, 4, 0.662, 0, 0]),
    (FLOAT, '[1435774380]', [1435774380]),
    (FLOAT, '[1435774380.0]', [1435774380]),
], ids=['MixedInputForFloatTensor', 'MixedInputForDoubleTensor',
        'FloatTensorWithPrecisionLoss', 'FloatTensorWithPrecisionLoss.0'])
def test_numbers_for_float_tensors(dtype, text, values):
    array = decode('{"instances": %s}' % text, {'default': dtype}).inputs['default']
    expected = np.array(values, np.float32 if dtype == FLOAT else np.float64)
    assert array.dtype == expected.dtype and np.array_equal(array, expected)


def test_float_tensor_limits():   # FloatTensorThatExceedsMaxReturnsInf / MinReturnsZero
    for value, expected in ((1.7976931348623157e308, math.inf),
                            (-1.7976931348623157e308, -math.inf),
                            (2.2250738585072014e-308, 0.0)):
        [got] = decode('{"instances": [%r]}' % value,
                       {'default': FLOAT}).inputs['default'].tolist()
        assert got == expected


def test_single_unnamed_tensor_with_signature():   # SingleUnnamedTensorWithSignature
    doc = json_tensor.parse_json(
        b'{"signature_name": "predict_images", "instances": [[1,2]]}')
    assert json_tensor.signature_name(doc) == 'predict_images'
    assert json_tensor.decode_predict(doc, {'default': INT32}).inputs[
        'default'].shape == (1, 2)


@pytest.mark.parametrize('text,shape', [
    ('[ { "b64" : "aGVsbG8=" }, { "b64": "d29ybGQ=" } ]', (2,)),
    ('[ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]', (2, 1)),
    ('[ { "default": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ] } ]',
     (1, 2, 1)),
], ids=['SingleUnnamedTensorBase64Scalars', 'SingleUnnamedTensorBase64Lists',
        'SingleNamedTensorBase64'])
def test_base64(text, shape):
    array = decode('{"instances": %s}' % text, {'default': STRING}).inputs['default']
    assert array.shape == shape
    assert array.reshape(-1).tolist() == [b'hello', b'world']


def test_multiple_named_tensor():   # MultipleNamedTensor
    decoded = decode('''{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
         "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
         "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}''', {
            'int_tensor': INT32, 'str_tensor': STRING, 'float_tensor': FLOAT,
            'dbl_tensor': DOUBLE}).inputs
    assert decoded['int_tensor'].shape == (2, 3, 2)
    assert decoded['str_tensor'].tolist() == [[b'foo', b'bar'], [b'baz', b'bat']]
    floats = decoded['float_tensor']
    assert floats.shape == (2, 2) and math.isnan(floats[0, 1]) and floats[1, 1] == math.inf
    assert decoded['dbl_tensor'].shape == (2, 1)


def test_columnar():   # SingleUnnamedTensorColumnarFormat, MultipleNamedTensorColumnarFormat
    for text in ('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
                 '{"inputs": [[[1,2],[3,4],[5,6]]]}'):
        decoded = decode(text, {'int_tensor': INT32})
        assert not decoded.row_format
        assert decoded.inputs['int_tensor'].shape == (1, 3, 2)
    inputs = decode('''{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]],
        "str_tensor": ["foo", "bar"], "bin_tensor": { "b64" : "aGVsbG8=" }}}''', {
            'int_tensor': INT32, 'str_tensor': STRING, 'bin_tensor': STRING}).inputs
    assert inputs['str_tensor'].tolist() == [b'foo', b'bar']
    assert inputs['bin_tensor'].shape == () and inputs['bin_tensor'].item() == b'hello'


@pytest.mark.parametrize('text,message', [
    ('', 'document is empty'),
    ('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}',
     'must be a string value'),
    ('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}',
     'Not formatted correctly'),
    ('{"instances": [[1,2],[3,4],[5,6,7]]}', 'Expecting tensor size'),
    ('{"instances": [[1,2],[3,4],[[5,6]]]}', 'Expecting shape'),
    ('{"instances": [1, [1]]}', 'Expecting shape'),
    ('{"instances": [[1,2],["a", "b"]]}', 'not of expected type'),
])
def test_single_unnamed_tensor_errors(text, message):   # SingleUnnamedTensorErrors
    if not text:
        with pytest.raises(errors.ServingError, match=message):
            json_tensor.parse_json(b'')
        return
    doc = json_tensor.parse_json(text.encode())
    with pytest.raises(errors.ServingError) as raised:
        json_tensor.signature_name(doc)
        json_tensor.decode_predict(doc, {'default': INT32})
    assert message in raised.value.message


@pytest.mark.parametrize('instances,message', [
    ('[{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},'
     ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]',
     'Expecting shape'),
    ('[{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["foo", "bar"]},'
     ' {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"]}]',
     'Expecting tensor size'),
    ('[{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},'
     ' [1, 20, 30], {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["a"]}]',
     'Expecting object but got list'),
])
def test_multiple_named_tensor_errors(instances, message):   # MultipleNamedTensorErrors
    assert message in refused('{"instances": %s}' % instances,
                              {'int_tensor': INT32, 'str_tensor': STRING})
    if 'object but' in message:
        assert 'Expecting value/list but got object' in refused(
            '{"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]}',
            {'str_tensor': STRING})


def test_from_json_tensors():   # FromJsonSingleTensor ... FromJsonMultipleNamedTensors
    ints = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)
    assert json_tensor.encode_predict({'int_tensor': ints}, row_format=True) == {
        'predictions': ints.tolist()}
    assert json_tensor.encode_predict({'int_tensor': ints}, row_format=False) == {
        'outputs': ints.tolist()}
    assert json_tensor.encode_predict({'int_tensor': np.arange(1, 6, dtype=np.int32)},
                                      row_format=True) == {'predictions': [1, 2, 3, 4, 5]}
    words = np.array([[b'hello', b'world'], [b'tf', b'serving']], dtype=object)
    assert json_tensor.encode_predict({'str_tensor_bytes': words}, row_format=True) == {
        'predictions': [[{'b64': 'aGVsbG8='}, {'b64': 'd29ybGQ='}],
                        [{'b64': 'dGY='}, {'b64': 'c2VydmluZw=='}]]}
    floats = np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)
    assert json_tensor.encode_predict({'f': floats}, row_format=True) == {
        'predictions': [[9e+06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5]]}
    special = json_tensor.encode_predict(
        {'f': np.array([[math.nan, math.inf], [3, -math.inf]], np.float32)},
        row_format=True)['predictions']
    assert math.isnan(special[0][0]) and special[0][1] == math.inf and special[1] == [3.0, -math.inf]
    outputs = {'double_scalar_tensor': np.array([8.0, 9.0]),
               'str_tensor': np.array([[b'foo', b'bar'], [b'baz', b'bat']], dtype=object),
               'float_tensor': np.array([[1.0], [2.0]], np.float32)}
    assert json_tensor.encode_predict(outputs, row_format=True) == {'predictions': [
        {'double_scalar_tensor': 8.0, 'float_tensor': [1.0], 'str_tensor': ['foo', 'bar']},
        {'double_scalar_tensor': 9.0, 'float_tensor': [2.0], 'str_tensor': ['baz', 'bat']}]}
    assert json_tensor.encode_predict({'t': np.zeros((0, 2), np.int32)},
                                      row_format=True) == {'predictions': []}


@pytest.mark.parametrize('outputs,message', [
    ({}, 'empty tensor map'),
    ({'tensor': np.array(3, np.int32)}, 'no shape information'),
    ({'int_tensor': np.zeros((2, 3), np.int32),
      'str_tensor': np.array([[b'a', b'b', b'c']], dtype=object)},
     'inconsistent batch size'),
], ids=['empty', 'scalar', 'batch_sizes'])
def test_from_json_tensor_errors(outputs, message):   # FromJson*Errors
    with pytest.raises(errors.ServingError) as raised:
        json_tensor.encode_predict(outputs, row_format=True)
    assert message in raised.value.message


@pytest.mark.parametrize('body,message', [
    ('{"signature_name": 5, "examples": [{}]}', "'signature_name' key must be a string"),
    ('{"examples": [1]}', 'Example must be JSON object'),
    ('{"examples": 1}', 'list/array'),
    ('{"context": 1, "examples": [{}]}', 'Example must be JSON object'),
    ('{"examples": [{"names": [null]}]}',
     'names has element with unexpected JSON type: Null'),
    ('{"examples": [{"names": [1, "a"]}]}', 'feature: names expecting type: int64'),
    ('{"examples": [{"names": [{"a": 1}]}]}',
     'names has element with unexpected JSON type: Object'),
    ('{"examples": [{"names": [[1]]}]}',
     'names has element with unexpected JSON type: Array'),
    ('{"examples": [{"names": [18446744073709551615]}]}', 'Only int64_t is supported'),
])
def test_classify_regress_request_errors(body, message):   # ClassifyRegressRequestTest
    doc = json_tensor.parse_json(body.encode())
    with pytest.raises(errors.ServingError) as raised:
        json_tensor.signature_name(doc)
        json_tensor.decode_examples(doc, 'classify')
    assert message in raised.value.message


def test_classify_regress_results():   # JsonFromClassificationResult ... JsonFromResultErrors
    assert json_tensor.encode_classification([[('car', 0.2), ('bus', 0.3)]]) == {
        'results': [[['car', 0.2], ['bus', 0.3]]]}
    assert json_tensor.encode_regression([0.2, 0.9, 1.0]) == {'results': [0.2, 0.9, 1.0]}
    values = json_tensor.encode_regression([0.2, math.inf, 1.0, -math.inf, math.nan])
    assert values['results'][:4] == [0.2, math.inf, 1.0, -math.inf]
    assert math.isnan(values['results'][4])
    for encode, message in ((json_tensor.encode_classification, 'empty ClassificationResults'),
                            (json_tensor.encode_regression, 'empty RegressionResults')):
        with pytest.raises(errors.ServingError, match=message):
            encode([])
