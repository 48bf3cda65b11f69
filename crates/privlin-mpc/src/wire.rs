//! Encoding of protocol messages: little-endian, length-prefixed vectors, decoded with every length
//! checked against the bytes actually received before anything is allocated.

use crate::error::{MpcError, Result};

/// A garbled-circuit wire label or OT key: 128 bits.
pub type Block = u128;

/// Encoded size of a ring vector of `n` elements (length prefix, `ceil(l / 8)` bytes each).
pub fn ring_vec_bytes(n: usize, bits: u32) -> u64 {
    8 + n as u64 * bits.div_ceil(8) as u64
}

/// Encoded size of `n` blocks.
pub fn blocks_bytes(n: usize) -> u64 {
    8 + 16 * n as u64
}

/// Encoded size of `n` bits.
pub fn bits_bytes(n: usize) -> u64 {
    8 + (n as u64).div_ceil(8)
}

/// Encoded size of a byte string of `n` bytes.
pub fn bytes_bytes(n: usize) -> u64 {
    8 + n as u64
}

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    /// Ring elements packed in `ceil(l / 8)` bytes each.
    pub fn ring_vec(&mut self, v: &[u64], bits: u32) -> &mut Self {
        let nb = bits.div_ceil(8) as usize;
        self.u64(v.len() as u64);
        let at = self.buf.len();
        self.buf.resize(at + v.len() * nb, 0);
        for (dst, x) in self.buf[at..].chunks_exact_mut(nb).zip(v) {
            dst.copy_from_slice(&x.to_le_bytes()[..nb]);
        }
        self
    }
    pub fn blocks(&mut self, v: &[Block]) -> &mut Self {
        self.u64(v.len() as u64);
        let at = self.buf.len();
        self.buf.resize(at + v.len() * 16, 0);
        for (dst, x) in self.buf[at..].chunks_exact_mut(16).zip(v) {
            dst.copy_from_slice(&x.to_le_bytes());
        }
        self
    }
    /// A bit vector, 8 bits per byte, LSB first.
    pub fn bits(&mut self, v: &[bool]) -> &mut Self {
        self.u64(v.len() as u64);
        let mut byte = 0u8;
        for (i, &b) in v.iter().enumerate() {
            byte |= (b as u8) << (i % 8);
            if i % 8 == 7 {
                self.buf.push(byte);
                byte = 0;
            }
        }
        if !v.len().is_multiple_of(8) {
            self.buf.push(byte);
        }
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Decodes one message; `what` names it in errors.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn err(&self, msg: String) -> MpcError {
        MpcError::malformed(self.what, msg)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(self.err(format!(
                "truncated: needs {n} more bytes at offset {}, {left} left",
                self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// A length prefix for items of `item_bytes` each, checked against what is left.
    fn len(&mut self, item_bytes: usize, field: &str) -> Result<usize> {
        let n = self.u64()?;
        let left = (self.buf.len() - self.pos) as u128;
        let need = n as u128 * item_bytes as u128;
        if need > left {
            return Err(self.err(format!(
                "{field}: length {n} needs {need} bytes, {left} left"
            )));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(1, "bytes")?;
        self.take(n)
    }

    pub fn ring_vec(&mut self, bits: u32) -> Result<Vec<u64>> {
        let nb = bits.div_ceil(8) as usize;
        let n = self.len(nb, "ring vector")?;
        let raw = self.take(n * nb)?;
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        Ok(raw
            .chunks_exact(nb)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..nb].copy_from_slice(c);
                u64::from_le_bytes(b) & mask
            })
            .collect())
    }

    pub fn blocks(&mut self) -> Result<Vec<Block>> {
        let n = self.len(16, "blocks")?;
        let raw = self.take(n * 16)?;
        Ok(raw
            .chunks_exact(16)
            .map(|c| u128::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// A bit vector; it allocates one `bool` per bit, so callers that know the count use
    /// [`Reader::bits_n`], and every frame is bounded by its expected size first.
    pub fn bits(&mut self) -> Result<Vec<bool>> {
        let n = self.u64()?;
        let left = (self.buf.len() - self.pos) as u64;
        if n.div_ceil(8) > left {
            return Err(self.err(format!("bit vector: {n} bits, {left} bytes left")));
        }
        let raw = self.take(n.div_ceil(8) as usize)?;
        Ok((0..n as usize)
            .map(|i| raw[i / 8] >> (i % 8) & 1 == 1)
            .collect())
    }

    /// Checks, without consuming it, that the next length prefix is `n` (before anything is
    /// allocated for the vector behind it).
    fn expect_count(&self, n: usize, field: &str) -> Result<()> {
        let Some(raw) = self.buf.get(self.pos..self.pos + 8) else {
            return Err(self.err(format!("{field}: truncated before its length")));
        };
        let got = u64::from_le_bytes(raw.try_into().unwrap());
        if got != n as u64 {
            return Err(self.err(format!("{field}: {got} items, expected {n}")));
        }
        Ok(())
    }

    /// A ring vector of exactly `n` elements.
    pub fn ring_vec_n(&mut self, bits: u32, n: usize, field: &str) -> Result<Vec<u64>> {
        self.expect_count(n, field)?;
        self.ring_vec(bits)
    }

    /// Exactly `n` blocks.
    pub fn blocks_n(&mut self, n: usize, field: &str) -> Result<Vec<Block>> {
        self.expect_count(n, field)?;
        self.blocks()
    }

    /// Exactly `n` bits.
    pub fn bits_n(&mut self, n: usize, field: &str) -> Result<Vec<bool>> {
        self.expect_count(n, field)?;
        self.bits()
    }

    /// Checks that the whole message was consumed.
    pub fn end(&self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(MpcError::malformed(
                self.what,
                format!("{} trailing bytes", self.buf.len() - self.pos),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation_errors() {
        let mut w = Writer::new();
        w.u32(7)
            .ring_vec(&[1, 2, u64::MAX >> 8], 56)
            .blocks(&[5, u128::MAX])
            .bits(&[true, false, true, true, false, false, false, false, true]);
        let buf = w.finish();
        let mut r = Reader::new(&buf, "test");
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.ring_vec(56).unwrap(), vec![1, 2, u64::MAX >> 8]);
        assert_eq!(r.blocks().unwrap(), vec![5, u128::MAX]);
        assert_eq!(r.bits().unwrap().len(), 9);
        r.end().unwrap();
        for cut in 0..buf.len() {
            let mut r = Reader::new(&buf[..cut], "test");
            let res = (|| -> Result<()> {
                r.u32()?;
                r.ring_vec(56)?;
                r.blocks()?;
                r.bits()?;
                Ok(())
            })();
            assert!(res.is_err(), "cut at {cut} decoded");
        }
        // A huge announced length is refused before allocating.
        let mut w = Writer::new();
        w.u64(u64::MAX);
        let err = Reader::new(&w.finish(), "huge").blocks().unwrap_err();
        assert!(err.to_string().contains("huge"), "{err}");
    }
}
