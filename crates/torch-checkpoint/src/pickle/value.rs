//! The value tree a pickle decodes to. Pure data: nothing here can run code.

use crate::tensor::DType;

/// A decoded pickle object.
///
/// Containers keep Python's insertion order. A [`Value::Dict`] may hold the same key more
/// than once when the pickle sets it twice; lookups ([`Value::get`]) take the last one,
/// as Python would.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A larger integer, as little-endian two's-complement bytes (pickle `LONG1`/`LONG4`).
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` object.
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `set` or `frozenset`.
    Set(Vec<Value>),
    /// A `dict` or `collections.OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// An allow-listed class or function that was named but not called.
    Global {
        /// Python module, e.g. `torch`.
        module: String,
        /// Qualified name, e.g. `FloatStorage`.
        name: String,
    },
    /// A storage reference from a `torch.save` persistent id.
    Storage(StorageRef),
    /// A tensor: a strided view of a storage (not yet read from the file).
    Tensor(TensorRef),
    /// A `numpy.dtype` object, only used to decode numpy scalars.
    NumpyDtype(NumpyDtype),
}

/// A torch storage type (`torch.FloatStorage`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageKind {
    /// The torch class name, e.g. `FloatStorage`.
    pub name: &'static str,
    /// The element type, or `None` for types this crate cannot convert (complex, quantized).
    pub dtype: Option<DType>,
    /// Bytes per element (known even when `dtype` is `None`, to skip such storages).
    pub element_size: usize,
}

/// A reference to a storage: `("storage", storage_type, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// Storage key: the zip entry `<prefix>/data/<key>`, or the legacy storage key.
    pub key: String,
    /// Storage type.
    pub kind: StorageKind,
    /// Device the storage was saved from (`cpu`, `cuda:0`); informational.
    pub location: String,
    /// Element count declared by the pickle.
    pub numel: u64,
    /// Legacy format only: this storage is a view of the root storage `key`.
    pub view: Option<StorageView>,
}

/// Legacy-format storage view: elements `offset .. offset + numel` of the root storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageView {
    /// First element of the view in the root storage.
    pub offset: u64,
    /// Elements in the view.
    pub numel: u64,
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` as data.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage the tensor views.
    pub storage: StorageRef,
    /// Offset of element `[0, .., 0]` in the storage, in elements.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<u64>,
    /// Strides in elements (torch strides are never negative).
    pub stride: Vec<u64>,
}

/// A `numpy.dtype` reduced as `numpy.dtype(code, False, True)` plus its `BUILD` state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumpyDtype {
    /// Type code such as `f4`, `f8`, `i8`, `b1`.
    pub code: String,
    /// Byte order from the `BUILD` state; numpy's default is native (little on x86/ARM).
    pub little_endian: bool,
}

impl Value {
    /// For a dict with string keys: the value of the last entry named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Short Python-like type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::Dict(_) => "dict",
            Value::Global { .. } => "class",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::NumpyDtype(_) => "numpy.dtype",
        }
    }

    /// Nesting depth: 0 for a leaf, 1 + the deepest child for a container.
    pub(crate) fn depth(&self) -> usize {
        let deepest = |vs: &mut dyn Iterator<Item = &Value>| vs.map(Value::depth).max();
        let child = match self {
            Value::List(vs) | Value::Tuple(vs) | Value::Set(vs) => deepest(&mut vs.iter()),
            Value::Dict(kv) => deepest(&mut kv.iter().flat_map(|(k, v)| [k, v])),
            _ => return 0,
        };
        1 + child.unwrap_or(0)
    }

    /// Number of nodes in the tree (for the expansion budget).
    pub(crate) fn node_count(&self) -> usize {
        match self {
            Value::List(vs) | Value::Tuple(vs) | Value::Set(vs) => {
                1 + vs.iter().map(Value::node_count).sum::<usize>()
            }
            Value::Dict(kv) => {
                1 + kv
                    .iter()
                    .map(|(k, v)| k.node_count() + v.node_count())
                    .sum::<usize>()
            }
            _ => 1,
        }
    }
}
