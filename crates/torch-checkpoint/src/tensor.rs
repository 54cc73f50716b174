//! [`RawTensor`]: a dense, row-major, little-endian tensor as plain bytes, and its [`DType`].

use std::fmt;

/// Element type of a [`RawTensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 64-bit IEEE float (`torch.float64`).
    F64,
    /// 32-bit IEEE float (`torch.float32`).
    F32,
    /// 16-bit IEEE float (`torch.float16`).
    F16,
    /// bfloat16 (`torch.bfloat16`).
    BF16,
    /// Signed 64-bit integer (`torch.int64`).
    I64,
    /// Signed 32-bit integer (`torch.int32`).
    I32,
    /// Signed 16-bit integer (`torch.int16`).
    I16,
    /// Signed 8-bit integer (`torch.int8`).
    I8,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 8-bit integer (`torch.uint8`).
    U8,
    /// Boolean stored as one byte, 0 or 1 (`torch.bool`).
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U64 => "u64",
            DType::U32 => "u32",
            DType::U16 => "u16",
            DType::U8 => "u8",
            DType::Bool => "bool",
        };
        f.write_str(name)
    }
}

/// A tensor could not be built or converted. Has no file path: it is an in-memory
/// operation; [`crate::StateDict`] helpers wrap it into a [`crate::Error`] that names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// `shape` and the byte length disagree.
    #[error("shape {shape:?} of {dtype} needs {expected} bytes, got {actual}")]
    LengthMismatch {
        /// The requested shape.
        shape: Vec<usize>,
        /// The requested dtype.
        dtype: DType,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
    /// The element count of `shape` overflows `usize`.
    #[error("shape {shape:?} has too many elements")]
    ShapeOverflow {
        /// The requested shape.
        shape: Vec<usize>,
    },
    /// No sensible conversion exists (e.g. floats to `i64`).
    #[error("cannot convert a {from} tensor to {to}")]
    UnsupportedConversion {
        /// The tensor's dtype.
        from: DType,
        /// The requested element type.
        to: &'static str,
    },
}

/// A dense tensor: shape, dtype and row-major little-endian element bytes.
///
/// Invariant: `data.len() == shape.iter().product() * dtype.size_in_bytes()`.
/// A 0-d tensor (scalar) has an empty shape and one element.
#[derive(Clone, PartialEq)]
pub struct RawTensor {
    shape: Vec<usize>,
    dtype: DType,
    data: Vec<u8>,
}

impl fmt::Debug for RawTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTensor")
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Number of elements of `shape`, or `None` on overflow.
pub(crate) fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl RawTensor {
    /// Builds a tensor from little-endian row-major bytes, checking the length.
    pub fn new(shape: Vec<usize>, dtype: DType, data: Vec<u8>) -> Result<Self, TensorError> {
        let expected = checked_numel(&shape)
            .and_then(|n| n.checked_mul(dtype.size_in_bytes()))
            .ok_or_else(|| TensorError::ShapeOverflow {
                shape: shape.clone(),
            })?;
        if expected != data.len() {
            return Err(TensorError::LengthMismatch {
                shape,
                dtype,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self { shape, dtype, data })
    }

    /// Builds an `f32` tensor from values.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Result<Self, TensorError> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(shape, DType::F32, data)
    }

    /// Builds an `i64` tensor from values.
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Result<Self, TensorError> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(shape, DType::I64, data)
    }

    /// The shape (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size_in_bytes()
    }

    /// Row-major little-endian element bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the tensor, returning `(shape, dtype, bytes)`.
    pub fn into_parts(self) -> (Vec<usize>, DType, Vec<u8>) {
        (self.shape, self.dtype, self.data)
    }

    fn chunks<const N: usize>(&self) -> impl Iterator<Item = [u8; N]> + '_ {
        // `chunks_exact` never yields a short chunk, so the conversion cannot fail.
        self.data
            .chunks_exact(N)
            .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N]))
    }

    /// Converts every element to `f32`: exact for f32/f16/bf16 and small integers,
    /// rounded for f64 and large integers; bool becomes 0.0 / 1.0.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.dtype {
            DType::F32 => self.chunks::<4>().map(f32::from_le_bytes).collect(),
            DType::F64 => self
                .chunks::<8>()
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            DType::F16 => self
                .chunks::<2>()
                .map(|b| half::f16::from_le_bytes(b).to_f32())
                .collect(),
            DType::BF16 => self
                .chunks::<2>()
                .map(|b| half::bf16::from_le_bytes(b).to_f32())
                .collect(),
            DType::I64 => self
                .chunks::<8>()
                .map(|b| i64::from_le_bytes(b) as f32)
                .collect(),
            DType::I32 => self
                .chunks::<4>()
                .map(|b| i32::from_le_bytes(b) as f32)
                .collect(),
            DType::I16 => self
                .chunks::<2>()
                .map(|b| f32::from(i16::from_le_bytes(b)))
                .collect(),
            DType::I8 => self.data.iter().map(|&b| f32::from(b as i8)).collect(),
            DType::U64 => self
                .chunks::<8>()
                .map(|b| u64::from_le_bytes(b) as f32)
                .collect(),
            DType::U32 => self
                .chunks::<4>()
                .map(|b| u32::from_le_bytes(b) as f32)
                .collect(),
            DType::U16 => self
                .chunks::<2>()
                .map(|b| f32::from(u16::from_le_bytes(b)))
                .collect(),
            DType::U8 => self.data.iter().map(|&b| f32::from(b)).collect(),
            DType::Bool => self
                .data
                .iter()
                .map(|&b| f32::from(u8::from(b != 0)))
                .collect(),
        }
    }

    /// Converts integer and bool elements to `i64`. Floats are refused (no silent
    /// truncation), and so are `u64` values above `i64::MAX`.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, TensorError> {
        let refuse = || TensorError::UnsupportedConversion {
            from: self.dtype,
            to: "i64",
        };
        let out = match self.dtype {
            DType::I64 => self.chunks::<8>().map(i64::from_le_bytes).collect(),
            DType::I32 => self
                .chunks::<4>()
                .map(|b| i64::from(i32::from_le_bytes(b)))
                .collect(),
            DType::I16 => self
                .chunks::<2>()
                .map(|b| i64::from(i16::from_le_bytes(b)))
                .collect(),
            DType::I8 => self.data.iter().map(|&b| i64::from(b as i8)).collect(),
            DType::U64 => self
                .chunks::<8>()
                .map(|b| i64::try_from(u64::from_le_bytes(b)).map_err(|_| refuse()))
                .collect::<Result<_, _>>()?,
            DType::U32 => self
                .chunks::<4>()
                .map(|b| i64::from(u32::from_le_bytes(b)))
                .collect(),
            DType::U16 => self
                .chunks::<2>()
                .map(|b| i64::from(u16::from_le_bytes(b)))
                .collect(),
            DType::U8 => self.data.iter().map(|&b| i64::from(b)).collect(),
            DType::Bool => self.data.iter().map(|&b| i64::from(b != 0)).collect(),
            DType::F64 | DType::F32 | DType::F16 | DType::BF16 => return Err(refuse()),
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_byte_length() {
        let err = RawTensor::new(vec![2, 2], DType::F32, vec![0; 15]).unwrap_err();
        assert!(matches!(
            err,
            TensorError::LengthMismatch { expected: 16, .. }
        ));
        let scalar = RawTensor::new(vec![], DType::F64, vec![0; 8]).unwrap();
        assert_eq!(scalar.numel(), 1);
    }

    #[test]
    fn shape_overflow_is_an_error() {
        let err = RawTensor::new(vec![usize::MAX, 2], DType::U8, vec![]).unwrap_err();
        assert!(matches!(err, TensorError::ShapeOverflow { .. }));
    }

    #[test]
    fn half_and_bfloat_convert_exactly() {
        let h: Vec<u8> = [1.0f32, -0.5, 65504.0, 2f32.powi(-24)]
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let t = RawTensor::new(vec![4], DType::F16, h).unwrap();
        assert_eq!(t.to_f32_vec(), vec![1.0, -0.5, 65504.0, 2f32.powi(-24)]);

        let b: Vec<u8> = [0x3f80u16, 0xc000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = RawTensor::new(vec![2], DType::BF16, b).unwrap();
        assert_eq!(t.to_f32_vec(), vec![1.0, -2.0]);
    }

    #[test]
    fn integer_conversions() {
        let t = RawTensor::from_i64(vec![3], &[-3, 0, 1 << 40]).unwrap();
        assert_eq!(t.to_i64_vec().unwrap(), vec![-3, 0, 1 << 40]);
        assert_eq!(t.to_f32_vec(), vec![-3.0, 0.0, 2f32.powi(40)]);
        let b = RawTensor::new(vec![3], DType::Bool, vec![1, 0, 1]).unwrap();
        assert_eq!(b.to_i64_vec().unwrap(), vec![1, 0, 1]);
        let i8s = RawTensor::new(vec![2], DType::I8, vec![0xff, 7]).unwrap();
        assert_eq!(i8s.to_f32_vec(), vec![-1.0, 7.0]);
    }

    #[test]
    fn floats_do_not_convert_to_i64() {
        let t = RawTensor::from_f32(vec![1], &[1.5]).unwrap();
        assert!(matches!(
            t.to_i64_vec(),
            Err(TensorError::UnsupportedConversion {
                from: DType::F32,
                ..
            })
        ));
        let big = RawTensor::new(vec![1], DType::U64, u64::MAX.to_le_bytes().to_vec()).unwrap();
        assert!(big.to_i64_vec().is_err());
    }

    #[test]
    fn f64_rounds_to_f32() {
        let t = RawTensor::new(vec![1], DType::F64, 0.1f64.to_le_bytes().to_vec()).unwrap();
        assert_eq!(t.to_f32_vec(), vec![0.1f32]);
    }
}
