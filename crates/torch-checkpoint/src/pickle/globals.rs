//! The allow-list of pickle globals, and what "calling" each one means as data.
//!
//! A pickle names classes and functions with `GLOBAL`/`STACK_GLOBAL` and applies them with
//! `REDUCE`/`NEWOBJ`. Python would import and run them; here only the names below are
//! accepted, and each is *interpreted*: `_rebuild_tensor_v2(storage, offset, size, stride, ..)`
//! becomes a [`TensorRef`], `OrderedDict()` an empty dict, and so on. Nothing is executed.

use super::value::{NumpyDtype, StorageKind, StorageRef, StorageView, TensorRef, Value};
use crate::tensor::DType;

/// Every callable the VM accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callable {
    OrderedDict,
    Set,
    FrozenSet,
    Bytes,
    CodecsEncode,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    /// `torch.Tensor`, `torch.nn.parameter.Parameter`: only used as type markers.
    TensorClass,
    Device,
    Size,
    Storage(StorageKind),
    NumpyScalar,
    NumpyDtype,
}

const fn kind(name: &'static str, dtype: Option<DType>, element_size: usize) -> StorageKind {
    StorageKind {
        name,
        dtype,
        element_size,
    }
}

/// torch's storage classes (`torch.<Name>`), with their element types.
const STORAGE_KINDS: &[StorageKind] = &[
    kind("DoubleStorage", Some(DType::F64), 8),
    kind("FloatStorage", Some(DType::F32), 4),
    kind("HalfStorage", Some(DType::F16), 2),
    kind("BFloat16Storage", Some(DType::BF16), 2),
    kind("LongStorage", Some(DType::I64), 8),
    kind("IntStorage", Some(DType::I32), 4),
    kind("ShortStorage", Some(DType::I16), 2),
    kind("CharStorage", Some(DType::I8), 1),
    kind("ByteStorage", Some(DType::U8), 1),
    kind("BoolStorage", Some(DType::Bool), 1),
    kind("UntypedStorage", Some(DType::U8), 1),
    kind("ComplexFloatStorage", None, 8),
    kind("ComplexDoubleStorage", None, 16),
    kind("QInt8Storage", None, 1),
    kind("QUInt8Storage", None, 1),
    kind("QInt32Storage", None, 4),
    kind("QUInt4x2Storage", None, 1),
    kind("QUInt2x4Storage", None, 1),
];

/// The allow-list. `None` means "refuse": the caller reports `UnsupportedGlobal`.
fn lookup(module: &str, name: &str) -> Option<Callable> {
    let callable = match (module, name) {
        ("collections", "OrderedDict") => Callable::OrderedDict,
        ("builtins" | "__builtin__", "set") => Callable::Set,
        ("builtins" | "__builtin__", "frozenset") => Callable::FrozenSet,
        ("builtins" | "__builtin__", "bytes" | "bytearray") => Callable::Bytes,
        ("_codecs", "encode") => Callable::CodecsEncode,
        ("torch._utils", "_rebuild_tensor_v2") => Callable::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Callable::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Callable::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Callable::RebuildParameterWithState,
        ("torch._tensor" | "torch._utils", "_rebuild_from_type_v2") => Callable::RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Callable::TensorClass,
        ("torch", "device") => Callable::Device,
        ("torch", "Size") => Callable::Size,
        ("torch" | "torch.cuda" | "torch.storage", storage) => {
            Callable::Storage(*STORAGE_KINDS.iter().find(|k| k.name == storage)?)
        }
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Callable::NumpyScalar,
        ("numpy", "dtype") => Callable::NumpyDtype,
        _ => return None,
    };
    Some(callable)
}

/// True when `module.name` is on the allow-list.
pub(crate) fn is_allowed(module: &str, name: &str) -> bool {
    lookup(module, name).is_some()
}

/// Applies an allow-listed global to `args` (from `REDUCE` or `NEWOBJ`), as data.
/// Errors are short descriptions; the VM adds the byte offset.
pub(crate) fn call(callee: &Value, args: Vec<Value>) -> Result<Value, String> {
    let Value::Global { module, name } = callee else {
        return Err(format!("cannot call a {}", callee.type_name()));
    };
    let callable =
        lookup(module, name).ok_or_else(|| format!("{module}.{name} is not allow-listed"))?;
    let wrong_args = || format!("unexpected arguments for {module}.{name}");
    match callable {
        Callable::OrderedDict => ordered_dict(args).ok_or_else(wrong_args),
        Callable::Set | Callable::FrozenSet => set(args).ok_or_else(wrong_args),
        Callable::Bytes => bytes(args).ok_or_else(wrong_args),
        Callable::CodecsEncode => codecs_encode(args),
        Callable::RebuildTensorV2 | Callable::RebuildTensor => rebuild_tensor(args),
        Callable::RebuildParameter | Callable::RebuildParameterWithState => {
            match args.into_iter().next() {
                Some(tensor @ Value::Tensor(_)) => Ok(tensor),
                _ => Err(wrong_args()),
            }
        }
        Callable::RebuildFromTypeV2 => rebuild_from_type_v2(args),
        Callable::Device => device(args).ok_or_else(wrong_args),
        Callable::Size => match <[Value; 1]>::try_from(args) {
            Ok([Value::Tuple(dims) | Value::List(dims)]) => Ok(Value::Tuple(dims)),
            _ => Err(wrong_args()),
        },
        Callable::NumpyDtype => numpy_dtype(args).ok_or_else(wrong_args),
        Callable::NumpyScalar => numpy_scalar(args),
        Callable::TensorClass | Callable::Storage(_) => Err(format!(
            "{module}.{name} is a type marker, not callable here"
        )),
    }
}

/// `NEWOBJ`: `cls.__new__(cls, *args)`. Mutable containers ignore `args` in `__new__`
/// (their contents come from later `SETITEMS`/`APPENDS`); other classes build from them.
pub(crate) fn construct(callee: &Value, args: Vec<Value>) -> Result<Value, String> {
    let empty_new = matches!(callee, Value::Global { module, name }
        if matches!(lookup(module, name), Some(Callable::OrderedDict | Callable::Set)));
    if empty_new {
        call(callee, Vec::new())
    } else {
        call(callee, args)
    }
}

fn ordered_dict(args: Vec<Value>) -> Option<Value> {
    let mut args = args.into_iter();
    let pairs = match (args.next(), args.next()) {
        (None, _) => return Some(Value::Dict(Vec::new())),
        (Some(Value::List(items) | Value::Tuple(items)), None) => items,
        (Some(dict @ Value::Dict(_)), None) => return Some(dict),
        _ => return None,
    };
    let entries = pairs
        .into_iter()
        .map(|pair| match pair {
            Value::Tuple(kv) | Value::List(kv) => <[Value; 2]>::try_from(kv).ok(),
            _ => None,
        })
        .map(|kv| kv.map(|[k, v]| (k, v)))
        .collect::<Option<Vec<_>>>()?;
    Some(Value::Dict(entries))
}

fn set(args: Vec<Value>) -> Option<Value> {
    match <[Value; 1]>::try_from(args) {
        Ok([Value::List(items) | Value::Tuple(items) | Value::Set(items)]) => {
            Some(Value::Set(items))
        }
        Err(args) if args.is_empty() => Some(Value::Set(Vec::new())),
        _ => None,
    }
}

fn bytes(args: Vec<Value>) -> Option<Value> {
    match <[Value; 1]>::try_from(args) {
        Ok([Value::Bytes(b)]) => Some(Value::Bytes(b)),
        Err(args) if args.is_empty() => Some(Value::Bytes(Vec::new())),
        _ => None,
    }
}

/// Protocol 2 writes `bytes` as `_codecs.encode(text, "latin1")`.
fn codecs_encode(args: Vec<Value>) -> Result<Value, String> {
    let Ok([Value::Str(text), Value::Str(encoding)]) = <[Value; 2]>::try_from(args) else {
        return Err("unexpected arguments for _codecs.encode".into());
    };
    if !matches!(encoding.as_str(), "latin1" | "latin-1" | "iso-8859-1") {
        return Err(format!("_codecs.encode with encoding {encoding:?}"));
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| "non-latin1 text in bytes".to_string()))
        .collect::<Result<Vec<u8>, _>>()
        .map(Value::Bytes)
}

fn non_negative(value: &Value, what: &str) -> Result<u64, String> {
    match value {
        Value::Int(i) => u64::try_from(*i).map_err(|_| format!("negative {what} {i}")),
        Value::Bool(b) => Ok(u64::from(*b)),
        other => Err(format!("{what} is a {}, expected int", other.type_name())),
    }
}

fn dims(value: &Value, what: &str) -> Result<Vec<u64>, String> {
    match value {
        Value::Tuple(items) | Value::List(items) => {
            items.iter().map(|v| non_negative(v, what)).collect()
        }
        other => Err(format!("{what} is a {}, expected tuple", other.type_name())),
    }
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])`
/// and the older `_rebuild_tensor(storage, storage_offset, size, stride)`.
fn rebuild_tensor(args: Vec<Value>) -> Result<Value, String> {
    let [storage, offset, size, stride, ..] = args.as_slice() else {
        return Err(format!(
            "_rebuild_tensor needs at least 4 arguments, got {}",
            args.len()
        ));
    };
    let Value::Storage(storage) = storage else {
        return Err(format!(
            "tensor storage is a {}, expected a storage",
            storage.type_name()
        ));
    };
    let shape = dims(size, "size")?;
    let stride = dims(stride, "stride")?;
    if shape.len() != stride.len() {
        return Err(format!(
            "size has {} dims but stride has {}",
            shape.len(),
            stride.len()
        ));
    }
    Ok(Value::Tensor(TensorRef {
        storage: storage.clone(),
        offset: non_negative(offset, "storage offset")?,
        shape,
        stride,
    }))
}

/// `_rebuild_from_type_v2(func, type, args, state)`: torch ≥ 1.12 wraps tensors that carry
/// Python attributes this way. `func` must itself be an allow-listed rebuild function.
fn rebuild_from_type_v2(args: Vec<Value>) -> Result<Value, String> {
    let mut args = args.into_iter();
    match (args.next(), args.next(), args.next()) {
        (Some(func @ Value::Global { .. }), Some(_type), Some(Value::Tuple(inner))) => {
            call(&func, inner)
        }
        _ => Err("unexpected arguments for _rebuild_from_type_v2".into()),
    }
}

fn device(args: Vec<Value>) -> Option<Value> {
    match args.as_slice() {
        [Value::Str(kind)] => Some(Value::Str(kind.clone())),
        [Value::Str(kind), Value::Int(index)] => Some(Value::Str(format!("{kind}:{index}"))),
        _ => None,
    }
}

fn numpy_dtype(args: Vec<Value>) -> Option<Value> {
    match args.into_iter().next() {
        Some(Value::Str(code)) => Some(Value::NumpyDtype(NumpyDtype {
            code,
            little_endian: true,
        })),
        _ => None,
    }
}

/// `numpy.core.multiarray.scalar(dtype, raw_bytes)`: e.g. a `numpy.float32` metric value.
fn numpy_scalar(args: Vec<Value>) -> Result<Value, String> {
    let Ok([Value::NumpyDtype(dtype), Value::Bytes(mut raw)]) = <[Value; 2]>::try_from(args) else {
        return Err("unexpected arguments for numpy scalar".into());
    };
    if !dtype.little_endian {
        raw.reverse();
    }
    let code = dtype.code.as_str();
    let width = match code.as_bytes() {
        [_, digit @ b'1'..=b'8'] => usize::from(digit - b'0'),
        _ => 0,
    };
    if width == 0 || raw.len() != width {
        return Err(format!(
            "numpy scalar of type {code:?} with {} bytes",
            raw.len()
        ));
    }
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(&raw);
    let value = match code {
        "f8" => Value::Float(f64::from_le_bytes(b)),
        "f4" => Value::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        "f2" => Value::Float(half::f16::from_le_bytes([b[0], b[1]]).to_f64()),
        "b1" => Value::Bool(b[0] != 0),
        "i1" | "i2" | "i4" | "i8" => {
            let shift = 64 - 8 * width as u32;
            Value::Int((i64::from_le_bytes(b) << shift) >> shift)
        }
        "u1" | "u2" | "u4" | "u8" => {
            let v = u64::from_le_bytes(b);
            i64::try_from(v).map_or_else(
                // Two's complement needs a zero sign byte to stay positive.
                |_| Value::BigInt(raw.iter().copied().chain([0]).collect()),
                Value::Int,
            )
        }
        other => return Err(format!("numpy scalar of unsupported type {other:?}")),
    };
    Ok(value)
}

/// `BUILD` on a numpy dtype: state `(version, byteorder, ...)`.
pub(crate) fn build_numpy_dtype(dtype: &mut NumpyDtype, state: &Value) -> Result<(), String> {
    match state {
        Value::Tuple(items) => match items.get(1) {
            Some(Value::Str(order)) => {
                dtype.little_endian = order != ">";
                Ok(())
            }
            _ => Err("numpy dtype state without a byte order".into()),
        },
        other => Err(format!("numpy dtype state is a {}", other.type_name())),
    }
}

fn text(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::Str(s) => Ok(s.clone()),
        // Python 2 era checkpoints may store these as bytes.
        Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| format!("{what} is not text")),
        other => Err(format!("{what} is a {}, expected str", other.type_name())),
    }
}

/// `BINPERSID`: torch's persistent id for a storage,
/// `("storage", storage_type, key, location, numel)` (zip format) or with a sixth
/// `view_metadata` element (legacy format).
pub(crate) fn persistent_load(pid: Value) -> Result<Value, String> {
    let Value::Tuple(items) = pid else {
        return Err(format!(
            "persistent id is a {}, expected tuple",
            pid.type_name()
        ));
    };
    match items.first() {
        Some(Value::Str(tag)) if tag == "storage" => {}
        Some(Value::Str(tag)) if tag == "module" => {
            return Err(
                "the file pickles a whole nn.Module (torch.save(model)); save model.state_dict() instead"
                    .into(),
            );
        }
        _ => return Err("persistent id is not a ('storage', ...) tuple".into()),
    }
    let [_, storage_type, key, location, numel, rest @ ..] = items.as_slice() else {
        return Err(format!(
            "storage persistent id has {} elements, expected 5 or 6",
            items.len()
        ));
    };
    let kind = match storage_type {
        Value::Global { module, name } => match lookup(module, name) {
            Some(Callable::Storage(kind)) => kind,
            _ => return Err(format!("{module}.{name} is not a storage type")),
        },
        other => return Err(format!("storage type is a {}", other.type_name())),
    };
    let key = match key {
        Value::Int(i) => i.to_string(),
        other => text(other, "storage key")?,
    };
    let view = match rest {
        [] | [Value::None] => None,
        [Value::Tuple(view)] => Some(legacy_view(view)?),
        _ => return Err("unexpected storage view metadata".into()),
    };
    Ok(Value::Storage(StorageRef {
        key,
        kind,
        location: text(location, "storage location")?,
        numel: non_negative(numel, "storage size")?,
        view,
    }))
}

fn legacy_view(view: &[Value]) -> Result<StorageView, String> {
    match view {
        [_view_key, offset, numel] => Ok(StorageView {
            offset: non_negative(offset, "view offset")?,
            numel: non_negative(numel, "view size")?,
        }),
        _ => Err("storage view metadata is not (key, offset, size)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(module: &str, name: &str) -> Value {
        Value::Global {
            module: module.into(),
            name: name.into(),
        }
    }

    #[test]
    fn allow_list_refuses_code_execution_primitives() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("builtins", "getattr"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("torch", "NotAStorage"),
            ("collections", "defaultdict"),
        ] {
            assert!(!is_allowed(m, n), "{m}.{n} must be refused");
        }
        assert!(is_allowed("torch", "FloatStorage"));
        assert!(is_allowed("torch._utils", "_rebuild_tensor_v2"));
    }

    #[test]
    fn codecs_encode_decodes_latin1() {
        let v = call(
            &global("_codecs", "encode"),
            vec![
                Value::Str("\u{0}\u{ff}A".into()),
                Value::Str("latin1".into()),
            ],
        )
        .unwrap();
        assert_eq!(v, Value::Bytes(vec![0, 255, 65]));
        let err = call(
            &global("_codecs", "encode"),
            vec![Value::Str("\u{100}".into()), Value::Str("latin1".into())],
        );
        assert!(err.is_err());
    }

    #[test]
    fn numpy_scalars_decode() {
        let f4 = NumpyDtype {
            code: "f4".into(),
            little_endian: true,
        };
        let v = call(
            &global("numpy.core.multiarray", "scalar"),
            vec![
                Value::NumpyDtype(f4),
                Value::Bytes(0.8125f32.to_le_bytes().to_vec()),
            ],
        )
        .unwrap();
        assert_eq!(v, Value::Float(0.8125));
        let i2 = NumpyDtype {
            code: "i2".into(),
            little_endian: false,
        };
        let v = call(
            &global("numpy._core.multiarray", "scalar"),
            vec![
                Value::NumpyDtype(i2),
                Value::Bytes((-2i16).to_be_bytes().to_vec()),
            ],
        )
        .unwrap();
        assert_eq!(v, Value::Int(-2));
    }

    #[test]
    fn rebuild_tensor_validates_arguments() {
        let storage = persistent_load(Value::Tuple(vec![
            Value::Str("storage".into()),
            global("torch", "FloatStorage"),
            Value::Str("0".into()),
            Value::Str("cpu".into()),
            Value::Int(6),
        ]))
        .unwrap();
        let tuple = |v: &[i64]| Value::Tuple(v.iter().map(|&i| Value::Int(i)).collect());
        let ok = call(
            &global("torch._utils", "_rebuild_tensor_v2"),
            vec![
                storage.clone(),
                Value::Int(0),
                tuple(&[2, 3]),
                tuple(&[3, 1]),
                Value::Bool(false),
                Value::Dict(vec![]),
            ],
        )
        .unwrap();
        assert!(matches!(ok, Value::Tensor(TensorRef { ref shape, .. }) if shape == &[2, 3]));
        let mismatched = call(
            &global("torch._utils", "_rebuild_tensor_v2"),
            vec![storage.clone(), Value::Int(0), tuple(&[2, 3]), tuple(&[1])],
        );
        assert!(mismatched.is_err());
        let negative = call(
            &global("torch._utils", "_rebuild_tensor"),
            vec![storage, Value::Int(-1), tuple(&[1]), tuple(&[1])],
        );
        assert!(negative.is_err());
    }

    #[test]
    fn storage_types_are_markers_not_callables() {
        assert!(call(&global("torch", "FloatStorage"), vec![]).is_err());
        assert!(call(&Value::Int(3), vec![]).is_err());
    }
}
