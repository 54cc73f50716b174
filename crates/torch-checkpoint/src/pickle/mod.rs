//! A pickle reader that treats the pickle as data.
//!
//! It runs the pickle opcodes on a stack like CPython's `Unpickler`, but `GLOBAL` only
//! resolves names on the allow-list (see the crate docs), and `REDUCE`/`NEWOBJ`/`BUILD` interpret
//! those few callables instead of calling anything. Untrusted input is bounded: every read is
//! bounds-checked, nesting is capped at [`MAX_DEPTH`], and memo references (which let a short
//! pickle describe a huge tree) are expanded against a budget proportional to the input size.

mod globals;
mod value;

use std::collections::HashMap;

pub use value::{NumpyDtype, StorageKind, StorageRef, StorageView, TensorRef, Value};

/// Deepest container nesting accepted (torch checkpoints nest about 6 levels).
pub const MAX_DEPTH: usize = 128;

/// Expansion budget: tree nodes (plus one unit per 8 bytes of text) per input byte.
const BUDGET_PER_INPUT_BYTE: usize = 4;
const BUDGET_BASE: usize = 4096;
/// Longest chain of memo entries that merely alias each other.
const MAX_ALIAS_HOPS: usize = 64;

/// Why a pickle was rejected. Offsets are byte positions in the pickle stream.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickleError {
    /// The stream ended before `STOP`, or inside an opcode's argument.
    #[error("pickle is truncated at byte {offset}")]
    Truncated {
        /// Where more bytes were needed.
        offset: usize,
    },
    /// An opcode this reader does not implement (or an unknown byte).
    #[error("unsupported pickle opcode {name} (0x{code:02x}) at byte {offset}")]
    UnsupportedOpcode {
        /// Opcode name as in Python's `pickletools`, or `unknown`.
        name: &'static str,
        /// The opcode byte.
        code: u8,
        /// Position of the opcode.
        offset: usize,
    },
    /// A class or function outside the allow-list. Nothing was imported or executed.
    #[error(
        "refusing pickle global `{module}.{name}` at byte {offset}: not on the allow-list \
         (nothing was executed)"
    )]
    UnsupportedGlobal {
        /// Python module named by the pickle.
        module: String,
        /// Name inside that module.
        name: String,
        /// Position of the `GLOBAL`/`STACK_GLOBAL` opcode.
        offset: usize,
    },
    /// An opcode needed more stack items than there were.
    #[error("pickle stack underflow at byte {offset} ({opcode})")]
    StackUnderflow {
        /// Opcode name.
        opcode: &'static str,
        /// Position of the opcode.
        offset: usize,
    },
    /// Structurally invalid content (bad UTF-8, wrong argument types, missing memo entry...).
    #[error("malformed pickle at byte {offset}: {detail}")]
    Malformed {
        /// Position of the opcode.
        offset: usize,
        /// What was wrong.
        detail: String,
    },
    /// Nesting or expansion beyond the limits that protect memory and the stack.
    #[error("pickle exceeds a safety limit at byte {offset}: {detail}")]
    LimitExceeded {
        /// Position of the opcode.
        offset: usize,
        /// Which limit.
        detail: String,
    },
}

/// Parses one pickle from the start of `bytes` (bytes after `STOP` are ignored).
pub fn parse(bytes: &[u8]) -> Result<Value, PickleError> {
    parse_prefix(bytes).map(|(value, _)| value)
}

/// Parses one pickle from the start of `bytes`; also returns how many bytes it used,
/// for formats that concatenate pickles (the legacy torch format).
pub fn parse_prefix(bytes: &[u8]) -> Result<(Value, usize), PickleError> {
    Machine::new(bytes).run()
}

/// Internal object: like [`Value`] but containers may hold memo references, so that
/// a container filled after it was memoized is seen complete by every reference.
#[derive(Debug)]
enum Obj {
    Leaf(Value),
    Ref(u32),
    List(Vec<Obj>, usize),
    Tuple(Vec<Obj>, usize),
    Set(Vec<Obj>, usize),
    Dict(Vec<(Obj, Obj)>, usize),
}

impl Obj {
    /// Nesting depth as defined by [`Value::depth`]; memo references count as leaves.
    fn depth(&self) -> usize {
        match self {
            Obj::Leaf(v) => v.depth(),
            Obj::Ref(_) => 0,
            Obj::List(_, d) | Obj::Tuple(_, d) | Obj::Set(_, d) | Obj::Dict(_, d) => *d,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Obj::Leaf(v) => v.type_name(),
            Obj::Ref(_) => "reference",
            Obj::List(..) => "list",
            Obj::Tuple(..) => "tuple",
            Obj::Set(..) => "set",
            Obj::Dict(..) => "dict",
        }
    }

    /// Turns a freshly built container value into a mutable container.
    fn from_value(value: Value) -> Obj {
        let depth = value.depth();
        let leaves = |vs: Vec<Value>| vs.into_iter().map(Obj::Leaf).collect();
        match value {
            Value::List(vs) => Obj::List(leaves(vs), depth),
            Value::Tuple(vs) => Obj::Tuple(leaves(vs), depth),
            Value::Set(vs) => Obj::Set(leaves(vs), depth),
            Value::Dict(kv) => Obj::Dict(
                kv.into_iter()
                    .map(|(k, v)| (Obj::Leaf(k), Obj::Leaf(v)))
                    .collect(),
                depth,
            ),
            leaf => Obj::Leaf(leaf),
        }
    }
}

/// What APPEND(S)/ADDITEMS or SETITEM(S) add to the container on top of the stack.
enum Additions {
    Items(Vec<Obj>),
    Pairs(Vec<(Obj, Obj)>),
}

fn sequence_depth(items: &[Obj]) -> usize {
    1 + items.iter().map(Obj::depth).max().unwrap_or(0)
}

fn opcode_name(code: u8) -> &'static str {
    match code {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

/// The unpickler state.
struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Start of the opcode being executed, for error messages.
    op_offset: usize,
    op_name: &'static str,
    stack: Vec<Obj>,
    /// Stack lengths at each `MARK` (CPython's metastack).
    marks: Vec<usize>,
    memo: HashMap<u32, Obj>,
    /// Remaining expansion units for resolving memo references.
    budget: usize,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            op_offset: 0,
            op_name: "",
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            budget: bytes
                .len()
                .saturating_mul(BUDGET_PER_INPUT_BYTE)
                .saturating_add(BUDGET_BASE),
        }
    }

    // ----------------------------------------------------------------- errors

    fn malformed(&self, detail: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            offset: self.op_offset,
            detail: detail.into(),
        }
    }

    fn limit(&self, detail: impl Into<String>) -> PickleError {
        PickleError::LimitExceeded {
            offset: self.op_offset,
            detail: detail.into(),
        }
    }

    fn underflow(&self) -> PickleError {
        PickleError::StackUnderflow {
            opcode: self.op_name,
            offset: self.op_offset,
        }
    }

    // ----------------------------------------------------------------- reading

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(PickleError::Truncated {
                offset: self.bytes.len(),
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take_array::<1>()?[0])
    }

    fn u32_len(&mut self) -> Result<usize, PickleError> {
        let n = u32::from_le_bytes(self.take_array()?);
        usize::try_from(n).map_err(|_| self.limit("length does not fit in memory"))
    }

    fn u64_len(&mut self) -> Result<usize, PickleError> {
        let n = u64::from_le_bytes(self.take_array()?);
        // A length beyond the input is a truncation, whatever usize can hold.
        usize::try_from(n).map_err(|_| PickleError::Truncated {
            offset: self.bytes.len(),
        })
    }

    fn i32_len(&mut self) -> Result<usize, PickleError> {
        let n = i32::from_le_bytes(self.take_array()?);
        usize::try_from(n).map_err(|_| self.malformed(format!("negative length {n}")))
    }

    /// A `\n`-terminated line (GLOBAL's module and name).
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated {
                offset: self.bytes.len(),
            })?;
        let text = std::str::from_utf8(&rest[..end])
            .map_err(|_| self.malformed("GLOBAL name is not UTF-8"))?
            .to_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, PickleError> {
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(_) => Err(self.malformed("string is not valid UTF-8")),
        }
    }

    fn raw_bytes(&mut self, n: usize) -> Result<Value, PickleError> {
        Ok(Value::Bytes(self.take(n)?.to_vec()))
    }

    /// `LONG1`/`LONG4` payload: little-endian two's complement.
    fn long(&mut self, n: usize) -> Result<Value, PickleError> {
        let raw = self.take(n)?;
        if raw.is_empty() {
            return Ok(Value::Int(0));
        }
        let negative = raw[raw.len() - 1] & 0x80 != 0;
        let fill = if negative { 0xff } else { 0 };
        // Bytes beyond the 8th must be pure sign extension for the value to fit in i64.
        let fits = raw.len() <= 8
            || (raw[8..].iter().all(|&b| b == fill) && (raw[7] & 0x80 != 0) == negative);
        if !fits {
            return Ok(Value::BigInt(raw.to_vec()));
        }
        let mut b = [fill; 8];
        let used = raw.len().min(8);
        b[..used].copy_from_slice(&raw[..used]);
        Ok(Value::Int(i64::from_le_bytes(b)))
    }

    // ----------------------------------------------------------------- stack

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, obj: Obj) {
        self.stack.push(obj);
    }

    fn push_leaf(&mut self, value: Value) {
        self.stack.push(Obj::Leaf(value));
    }

    fn pop(&mut self) -> Result<Obj, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn pop_mark(&mut self) -> Result<Vec<Obj>, PickleError> {
        let mark = self.marks.pop().ok_or_else(|| self.underflow())?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn check_depth(&self, depth: usize) -> Result<usize, PickleError> {
        if depth > MAX_DEPTH {
            return Err(self.limit(format!("containers nested deeper than {MAX_DEPTH}")));
        }
        Ok(depth)
    }

    fn sequence(
        &self,
        items: Vec<Obj>,
        make: fn(Vec<Obj>, usize) -> Obj,
    ) -> Result<Obj, PickleError> {
        let depth = self.check_depth(sequence_depth(&items))?;
        Ok(make(items, depth))
    }

    fn pairs(&self, items: Vec<Obj>) -> Result<Vec<(Obj, Obj)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("odd number of items for a dict"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(pairs)
    }

    /// Follows memo entries that only alias another entry; returns the owning key.
    fn follow_aliases(&self, mut key: u32) -> Result<u32, PickleError> {
        for _ in 0..MAX_ALIAS_HOPS {
            match self.memo.get(&key) {
                Some(Obj::Ref(next)) => key = *next,
                Some(_) => return Ok(key),
                None => return Err(self.malformed(format!("memo key {key} missing"))),
            }
        }
        Err(self.limit("memo aliases form a cycle"))
    }

    /// The container on top of the stack, following memo references to where it lives.
    fn top_target(&mut self) -> Result<&mut Obj, PickleError> {
        if self.stack.len() <= self.floor() {
            return Err(self.underflow());
        }
        let top_ref = match self.stack.last() {
            Some(Obj::Ref(key)) => Some(*key),
            _ => None,
        };
        let err = self.underflow();
        let Some(start) = top_ref else {
            return self.stack.last_mut().ok_or(err);
        };
        let key = self.follow_aliases(start)?;
        self.memo.get_mut(&key).ok_or(err)
    }

    /// Adds items to the container on top of the stack: APPEND(S) and ADDITEMS to a
    /// list or set, SETITEM(S) (`as_pairs`) to a dict.
    fn extend_top(&mut self, items: Vec<Obj>, as_pairs: bool) -> Result<(), PickleError> {
        let child_depth = items.iter().map(Obj::depth).max().unwrap_or(0);
        let new_depth = self.check_depth(child_depth + 1)?;
        let additions = if as_pairs {
            Additions::Pairs(self.pairs(items)?)
        } else {
            Additions::Items(items)
        };
        let (op, offset) = (self.op_name, self.op_offset);
        match (self.top_target()?, additions) {
            (Obj::Dict(entries, depth), Additions::Pairs(pairs)) => {
                entries.extend(pairs);
                *depth = (*depth).max(new_depth);
            }
            (Obj::List(list, depth) | Obj::Set(list, depth), Additions::Items(items)) => {
                list.extend(items);
                *depth = (*depth).max(new_depth);
            }
            (other, _) => {
                return Err(PickleError::Malformed {
                    offset,
                    detail: format!("{op} on a {}", other.type_name()),
                });
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------- memo

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let top_index = self
            .stack
            .len()
            .checked_sub(1)
            .filter(|&i| i >= self.floor())
            .ok_or_else(|| self.underflow())?;
        let top = std::mem::replace(&mut self.stack[top_index], Obj::Ref(key));
        match top {
            // Already shared: alias it, unless it is this very key.
            Obj::Ref(existing) => {
                self.stack[top_index] = Obj::Ref(existing);
                if existing != key {
                    self.memo.insert(key, Obj::Ref(existing));
                }
            }
            obj => {
                self.memo.insert(key, obj);
            }
        }
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        if !self.memo.contains_key(&key) {
            return Err(self.malformed(format!("memo key {key} missing")));
        }
        self.push(Obj::Ref(key));
        Ok(())
    }

    // ----------------------------------------------------------------- resolving

    fn spend(&mut self, units: usize) -> Result<(), PickleError> {
        self.budget = self.budget.checked_sub(units).ok_or_else(|| {
            self.limit("memo references expand to a tree far larger than the input")
        })?;
        Ok(())
    }

    fn leaf_cost(value: &Value) -> usize {
        match value {
            Value::Str(s) => 1 + s.len() / 8,
            Value::Bytes(b) | Value::BigInt(b) => 1 + b.len() / 8,
            other => other.node_count(),
        }
    }

    /// Converts an object to a plain value, moving it when it is not shared.
    fn resolve_owned(&mut self, obj: Obj, depth: usize) -> Result<Value, PickleError> {
        self.check_depth(depth)?;
        match obj {
            Obj::Leaf(v) => Ok(v),
            Obj::Ref(key) => self.resolve_ref(key, depth),
            Obj::List(items, _) => Ok(Value::List(self.resolve_all(items, depth)?)),
            Obj::Tuple(items, _) => Ok(Value::Tuple(self.resolve_all(items, depth)?)),
            Obj::Set(items, _) => Ok(Value::Set(self.resolve_all(items, depth)?)),
            Obj::Dict(pairs, _) => {
                let mut out = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    out.push((
                        self.resolve_owned(k, depth + 1)?,
                        self.resolve_owned(v, depth + 1)?,
                    ));
                }
                Ok(Value::Dict(out))
            }
        }
    }

    fn resolve_all(&mut self, items: Vec<Obj>, depth: usize) -> Result<Vec<Value>, PickleError> {
        items
            .into_iter()
            .map(|o| self.resolve_owned(o, depth + 1))
            .collect()
    }

    /// Expands a memo reference by copying the shared object (charged to the budget).
    fn resolve_ref(&mut self, key: u32, depth: usize) -> Result<Value, PickleError> {
        self.check_depth(depth)?;
        // Temporarily take the entry out: a reference cycle then finds it missing.
        let shared = self
            .memo
            .remove(&key)
            .ok_or_else(|| self.limit("a memo entry refers to itself (reference cycle)"))?;
        let result = self.copy_shared(&shared, depth);
        self.memo.insert(key, shared);
        result
    }

    fn copy_shared(&mut self, obj: &Obj, depth: usize) -> Result<Value, PickleError> {
        self.check_depth(depth)?;
        match obj {
            Obj::Leaf(v) => {
                self.spend(Self::leaf_cost(v))?;
                Ok(v.clone())
            }
            Obj::Ref(key) => self.resolve_ref(*key, depth + 1),
            Obj::List(items, _) => Ok(Value::List(self.copy_all(items, depth)?)),
            Obj::Tuple(items, _) => Ok(Value::Tuple(self.copy_all(items, depth)?)),
            Obj::Set(items, _) => Ok(Value::Set(self.copy_all(items, depth)?)),
            Obj::Dict(pairs, _) => {
                self.spend(1)?;
                let mut out = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    out.push((
                        self.copy_shared(k, depth + 1)?,
                        self.copy_shared(v, depth + 1)?,
                    ));
                }
                Ok(Value::Dict(out))
            }
        }
    }

    fn copy_all(&mut self, items: &[Obj], depth: usize) -> Result<Vec<Value>, PickleError> {
        self.spend(1)?;
        items
            .iter()
            .map(|o| self.copy_shared(o, depth + 1))
            .collect()
    }

    fn pop_value(&mut self) -> Result<Value, PickleError> {
        let obj = self.pop()?;
        self.resolve_owned(obj, 0)
    }

    // ----------------------------------------------------------------- opcodes

    fn global(&mut self, module: String, name: String) -> Result<(), PickleError> {
        if !globals::is_allowed(&module, &name) {
            return Err(PickleError::UnsupportedGlobal {
                module,
                name,
                offset: self.op_offset,
            });
        }
        self.push_leaf(Value::Global { module, name });
        Ok(())
    }

    fn stack_global(&mut self) -> Result<(), PickleError> {
        let name = self.pop_value()?;
        let module = self.pop_value()?;
        match (module, name) {
            (Value::Str(module), Value::Str(name)) => self.global(module, name),
            _ => Err(self.malformed("STACK_GLOBAL needs two strings")),
        }
    }

    /// `REDUCE` (`new_object` false) or `NEWOBJ`/`NEWOBJ_EX` (true): apply an allow-listed
    /// callable as data.
    fn apply(&mut self, args: Value, new_object: bool) -> Result<(), PickleError> {
        let callee = self.pop_value()?;
        let args = match args {
            Value::Tuple(items) => items,
            other => {
                return Err(self.malformed(format!(
                    "call arguments are a {}, expected tuple",
                    other.type_name()
                )));
            }
        };
        let result = if new_object {
            globals::construct(&callee, args)
        } else {
            globals::call(&callee, args)
        }
        .map_err(|detail| self.malformed(detail))?;
        let obj = Obj::from_value(result);
        self.check_depth(obj.depth())?;
        self.push(obj);
        Ok(())
    }

    fn build(&mut self) -> Result<(), PickleError> {
        let state = self.pop_value()?;
        let offset = self.op_offset;
        let target = self.top_target()?;
        match target {
            // `OrderedDict` attributes such as a state dict's `_metadata`: not needed.
            Obj::Dict(..) => Ok(()),
            // `_rebuild_parameter_with_state` style state on a tensor: not needed.
            Obj::Leaf(Value::Tensor(_)) => Ok(()),
            Obj::Leaf(Value::NumpyDtype(dtype)) => globals::build_numpy_dtype(dtype, &state)
                .map_err(|detail| PickleError::Malformed { offset, detail }),
            other => Err(PickleError::Malformed {
                offset,
                detail: format!("BUILD on a {}", other.type_name()),
            }),
        }
    }

    fn persistent_id(&mut self) -> Result<(), PickleError> {
        let pid = self.pop_value()?;
        let storage = globals::persistent_load(pid).map_err(|detail| self.malformed(detail))?;
        self.push_leaf(storage);
        Ok(())
    }

    fn unsupported(&self, code: u8) -> PickleError {
        PickleError::UnsupportedOpcode {
            name: opcode_name(code),
            code,
            offset: self.op_offset,
        }
    }

    /// Runs opcodes until `STOP`; returns the result and the position after `STOP`.
    fn run(mut self) -> Result<(Value, usize), PickleError> {
        loop {
            self.op_offset = self.pos;
            let code = self.u8()?;
            self.op_name = opcode_name(code);
            if code == b'.' {
                let result = self.pop_value()?;
                return Ok((result, self.pos));
            }
            self.step(code)?;
        }
    }

    fn step(&mut self, code: u8) -> Result<(), PickleError> {
        match code {
            0x80 => {
                let protocol = self.u8()?;
                if protocol > 5 {
                    return Err(self.malformed(format!("unsupported protocol {protocol}")));
                }
            }
            0x95 => {
                // FRAME: a length prefix for buffering; the opcodes follow inline.
                self.take(8)?;
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                if self.stack.len() > self.floor() {
                    self.pop()?;
                } else {
                    self.pop_mark()?;
                }
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'N' => self.push_leaf(Value::None),
            0x88 => self.push_leaf(Value::Bool(true)),
            0x89 => self.push_leaf(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.take_array()?);
                self.push_leaf(Value::Int(i64::from(v)));
            }
            b'K' => {
                let v = self.u8()?;
                self.push_leaf(Value::Int(i64::from(v)));
            }
            b'M' => {
                let v = u16::from_le_bytes(self.take_array()?);
                self.push_leaf(Value::Int(i64::from(v)));
            }
            0x8a => {
                let n = usize::from(self.u8()?);
                let v = self.long(n)?;
                self.push_leaf(v);
            }
            0x8b => {
                let n = self.i32_len()?;
                let v = self.long(n)?;
                self.push_leaf(v);
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take_array()?);
                self.push_leaf(Value::Float(v));
            }
            b'X' => {
                let n = self.u32_len()?;
                let v = self.utf8(n)?;
                self.push_leaf(v);
            }
            0x8c => {
                let n = usize::from(self.u8()?);
                let v = self.utf8(n)?;
                self.push_leaf(v);
            }
            0x8d => {
                let n = self.u64_len()?;
                let v = self.utf8(n)?;
                self.push_leaf(v);
            }
            // Python 2 `str`: torch.load decodes it as UTF-8.
            b'T' => {
                let n = self.i32_len()?;
                let v = self.utf8(n)?;
                self.push_leaf(v);
            }
            b'U' => {
                let n = usize::from(self.u8()?);
                let v = self.utf8(n)?;
                self.push_leaf(v);
            }
            b'B' => {
                let n = self.u32_len()?;
                let v = self.raw_bytes(n)?;
                self.push_leaf(v);
            }
            b'C' => {
                let n = usize::from(self.u8()?);
                let v = self.raw_bytes(n)?;
                self.push_leaf(v);
            }
            0x8e | 0x96 => {
                let n = self.u64_len()?;
                let v = self.raw_bytes(n)?;
                self.push_leaf(v);
            }
            b')' => self.push(Obj::Tuple(Vec::new(), 1)),
            b']' => self.push(Obj::List(Vec::new(), 1)),
            b'}' => self.push(Obj::Dict(Vec::new(), 1)),
            0x8f => self.push(Obj::Set(Vec::new(), 1)),
            b't' => {
                let items = self.pop_mark()?;
                let tuple = self.sequence(items, Obj::Tuple)?;
                self.push(tuple);
            }
            0x85..=0x87 => {
                let n = usize::from(code - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                let tuple = self.sequence(items, Obj::Tuple)?;
                self.push(tuple);
            }
            b'l' => {
                let items = self.pop_mark()?;
                let list = self.sequence(items, Obj::List)?;
                self.push(list);
            }
            0x91 => {
                let items = self.pop_mark()?;
                let set = self.sequence(items, Obj::Set)?;
                self.push(set);
            }
            b'd' => {
                let items = self.pop_mark()?;
                let depth = self.check_depth(sequence_depth(&items))?;
                let pairs = self.pairs(items)?;
                self.push(Obj::Dict(pairs, depth));
            }
            b'a' => {
                let item = self.pop()?;
                self.extend_top(vec![item], false)?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.extend_top(items, false)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.extend_top(vec![key, value], true)?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend_top(items, true)?;
            }
            b'q' => {
                let key = self.u8()?;
                self.memo_put(u32::from(key))?;
            }
            b'r' => {
                let key = u32::from_le_bytes(self.take_array()?);
                self.memo_put(key)?;
            }
            0x94 => {
                let key = u32::try_from(self.memo.len())
                    .map_err(|_| self.limit("too many memo entries"))?;
                self.memo_put(key)?;
            }
            b'h' => {
                let key = self.u8()?;
                self.memo_get(u32::from(key))?;
            }
            b'j' => {
                let key = u32::from_le_bytes(self.take_array()?);
                self.memo_get(key)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?;
            }
            0x93 => self.stack_global()?,
            b'R' | 0x81 => {
                let args = self.pop_value()?;
                self.apply(args, code == 0x81)?;
            }
            0x92 => {
                let kwargs = self.pop_value()?;
                if !matches!(&kwargs, Value::Dict(kv) if kv.is_empty()) {
                    return Err(self.malformed("NEWOBJ_EX with keyword arguments"));
                }
                let args = self.pop_value()?;
                self.apply(args, true)?;
            }
            b'b' => self.build()?,
            b'Q' => self.persistent_id()?,
            other => return Err(self.unsupported(other)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
